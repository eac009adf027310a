"""The `sla-monitor` command line: run, check-config, schedule, schema, backtest, demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from monitor.config.load import ConfigError, config_json_schema, load_config
from monitor.core.schedule import cron_schedule


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as error:
        for line in error.lines():
            print(line, file=sys.stderr)
        return 1
    print(f"{args.path}: OK ({len(config.batches)} batches)")
    return 0


def _schedule(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as error:
        for line in error.lines():
            print(line, file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    try:
        since = datetime.fromisoformat(args.since) if args.since else None
    except ValueError:
        print(f"sla-monitor schedule: --since {args.since!r} is not an ISO 8601 date or time",
              file=sys.stderr)  # fmt: skip
        return 2
    for batch in config.batches:
        rule = config.deadline_rule(batch)
        if rule is None:
            print(f"{batch.name}: freshness {batch.freshness} (no deadlines)")
            continue
        calendar = config.calendar_of(batch)
        on = f", business days of {calendar.name}" if calendar is not None else ""
        print(f"{batch.name}: {batch.deadline} ({rule.cron.tz.key}{on})")
        local = rule.cron.local  # printed in the batch's own zone, with its offset
        every_day = cron_schedule(batch.deadline, rule.cron.tz)
        after = now
        if since is not None:  # a naive --since is a wall time in the batch's own zone
            start = since if since.tzinfo else since.replace(tzinfo=rule.cron.tz)
            after = start - timedelta(microseconds=1)
        for deadline in rule.cron.upcoming(after, args.count):
            if calendar is not None:  # the instants the calendar dropped before this one
                for dropped in every_day.between(after, deadline - timedelta(microseconds=1)):
                    day = local(dropped).date()
                    print(f"  {day.isoformat()} skipped: {calendar.skipped(day)}")
            after = deadline
            start, end = rule.window_of(deadline)
            print(
                f"  {local(deadline).isoformat()}  "
                f"window ({local(start).isoformat()}, {local(end).isoformat()}]"
            )
    return 0


def _run(args: argparse.Namespace) -> int:
    from monitor.runtime.daemon import Daemon, Options, StartupError

    _configure_logging(args.log_level)
    options = Options(
        config_path=args.config,
        dry_run=args.dry_run,
        listen=args.listen,
        leader_elect=args.leader_elect,
    )
    try:
        return Daemon(options).run()
    except StartupError as error:
        print(f"sla-monitor: cannot start:\n{error}", file=sys.stderr)
        return 2


def _configure_logging(level: str) -> None:
    """Logs go to stderr; stdout carries only dry-run alerts."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The scheduler logs every job run at INFO: one line per wake-up is noise.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.root.level))


def _backtest(args: argparse.Namespace) -> int:
    from monitor.core.schedule import parse_duration
    from monitor.runtime.backtest import backtest
    from monitor.runtime.kube_client import api_client_from_environment

    try:
        config = load_config(args.config)
    except ConfigError as error:
        for line in error.lines():
            print(line, file=sys.stderr)
        return 1
    try:
        since = parse_duration(args.since)
    except ValueError as error:
        print(f"sla-monitor backtest: --since {args.since!r}: {error}", file=sys.stderr)
        return 2
    _configure_logging("warning")
    return backtest(config, since, sys.stdout, api_client_from_environment)


def _demo(args: argparse.Namespace) -> int:
    from monitor.testing.demo import run_demo

    return run_demo(fast=args.fast, keep=args.keep)


def _schema(_: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sla-monitor",
        description="Deadline and freshness SLA monitor for Kubernetes batch Jobs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check-config", help="validate a config file or directory")
    check.add_argument("path")
    check.set_defaults(handler=_check_config)

    schedule = commands.add_parser("schedule", help="print each batch's next deadlines")
    schedule.add_argument("path")
    schedule.add_argument("--count", type=int, default=5)
    schedule.add_argument(
        "--since", help="list from this ISO 8601 instant instead of now (e.g. 2026-12-28)"
    )
    schedule.set_defaults(handler=_schedule)

    run = commands.add_parser("run", help="run the monitor (against $KUBECONFIG or in-cluster)")
    run.add_argument("--config", required=True, help="config file or directory")
    run.add_argument(
        "--dry-run", action="store_true", help="print alerts as JSON lines instead of posting"
    )
    run.add_argument("--listen", default="0.0.0.0:8080", help="HTTP address (HOST:PORT)")
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="run only while holding the Lease sla-monitor in $POD_NAMESPACE",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(handler=_run)

    backtest = commands.add_parser(
        "backtest",
        help="print the alerts a config would have posted over the runs the cluster still lists",
    )
    backtest.add_argument("--config", required=True, help="config file or directory")
    backtest.add_argument("--since", default="7d", help="how far back (a duration: 7d, 36h)")
    backtest.set_defaults(handler=_backtest)

    schema = commands.add_parser("schema", help="print the config's JSON Schema")
    schema.set_defaults(handler=_schema)

    demo = commands.add_parser(
        "demo", help="run the daemon against local fakes with a scripted minute of batches"
    )
    demo.add_argument("--fast", action="store_true", help="twice as fast, no lingering")
    demo.add_argument(
        "--keep", action="store_true", help="keep the config, state and daemon log afterwards"
    )
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
