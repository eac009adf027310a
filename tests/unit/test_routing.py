"""The route → channel and mention mapping follows SPEC "Channels" in its exact order."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config.model import Config
from monitor.core.kinds import KINDS, Route
from monitor.notify.routing import Address, ConfigRouter

MENTION = "<!subteam^S0123>"


def router(slack: dict[str, Any], batch_slack: dict[str, Any], **extra: Any) -> ConfigRouter:
    batch = {
        "name": "recommend-daily",
        "match": {"cronjob": "recommend-daily"},
        "deadline": "0 9 * * *",
        "slack": batch_slack,
    }
    return ConfigRouter(Config.model_validate({"slack": slack, "batches": [batch], **extra}))


SLA = Route("sla", "recommend-daily")
ERRORS = Route("errors", "recommend-daily")


@pytest.mark.parametrize(
    ("slack", "batch_slack", "errors_to"),
    [
        (
            {"channel": "#d", "errors_channel": "#de"},
            {"channel": "#b", "errors_channel": "#be"},
            "#be",
        ),
        ({"channel": "#d", "errors_channel": "#de"}, {"channel": "#b"}, "#b"),
        ({"channel": "#d", "errors_channel": "#de"}, {}, "#de"),
        ({"channel": "#d"}, {}, "#d"),
    ],
)
def test_errors_take_the_first_set_of_the_four_channels(
    slack: dict[str, Any], batch_slack: dict[str, Any], errors_to: str
) -> None:
    routes = router(slack, batch_slack)
    assert routes.address(ERRORS).channel == errors_to
    # SLA alerts never go to an errors channel.
    assert routes.address(SLA).channel == batch_slack.get("channel", "#d")


def test_a_batch_mention_leads_its_own_alerts_only() -> None:
    routes = router({"channel": "#d"}, {"mention": MENTION})
    assert routes.address(SLA) == Address("#d", MENTION)
    assert routes.address(ERRORS) == Address("#d", MENTION)
    assert routes.address(Route("sla", "")) == Address("#d", None)  # monitor_degraded


def test_unmatched_runs_use_their_own_section_then_the_errors_defaults() -> None:
    unmatched = {"unmatched": {"slack": {"channel": "#u", "mention": "<@U1>"}}}
    routes = router({"channel": "#d", "errors_channel": "#de"}, {}, **unmatched)
    assert routes.address(Route("errors", "")) == Address("#u", "<@U1>")
    assert routes.address(Route("sla", "")) == Address("#d", None)  # not the unmatched route
    plain = router({"channel": "#d", "errors_channel": "#de"}, {})
    assert plain.address(Route("errors", "")) == Address("#de", None)


def test_a_batch_unknown_to_the_config_falls_back_to_the_defaults() -> None:
    routes = router({"channel": "#d", "errors_channel": "#de"}, {"channel": "#b"})
    assert routes.address(Route("errors", "removed-batch")) == Address("#de", None)
    assert routes.address(Route("sla", "removed-batch")) == Address("#d", None)


def test_every_kind_has_a_lane_and_only_diagnostics_go_to_errors() -> None:
    errors = {name for name, info in KINDS.items() if info.lane == "errors"}
    assert errors == {"job_failed", "traceback"}
    assert {name for name, info in KINDS.items() if info.incident} == {"missed_deadline", "stale"}
    assert not any(info.digestible for info in KINDS.values() if info.severity == "page")
