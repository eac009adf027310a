"""The HTTP endpoints over real HTTP on 127.0.0.1, fed by a real engine driven with facts."""

from __future__ import annotations

import gc
import importlib.util
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.engine import Engine
from monitor.core.facts import CLOUD_LOGGING, KUBERNETES, JobSeen, SourceHealth
from monitor.core.runs import Run
from monitor.core.schedule import DeadlineRule, cron_schedule
from monitor.core.status import run_on_time
from monitor.testing.wait import patient
from monitor.web.metrics import Metrics
from monitor.web.page import describe_cron
from monitor.web.server import (
    LatestStatus,
    OnDemandStatus,
    StatusServer,
    StatusSnapshot,
    parse_listen,
)
from tests.unit.engine_helpers import T0, advance, deadline_batch, failed, make_config, succeeded

H = timedelta(hours=1)
M = timedelta(minutes=1)
D1 = T0 + 9 * H  # 2026-11-26T09:00Z
NOW = D1 + M
HOSTILE = "<script>alert('x&y')</script>"
EVIL_RUN = '"><script>alert(1)</script>'
EVIL_REASON = "\" onmouseover=\"alert('reason')"
ROOT = Path(__file__).resolve().parents[2]


def scenario_engine() -> Engine:
    """At 09:01 UTC: one batch in each state, plus one with a hostile name."""
    config = make_config(
        deadline_batch("on-time"),
        deadline_batch("soon", cron="0 10 * * *"),
        deadline_batch("late"),
        {"name": "fresh", "match": {"cronjob": "fresh"}, "freshness": "30m"},
        deadline_batch("flaky", cron="0 12 * * *"),
        {"name": HOSTILE, "match": {"cronjob": "evil"}, "deadline": "0 9 * * *"},
    )
    engine = Engine(config, started_at=T0)
    advance(engine, T0)
    engine.handle(succeeded("a", D1 - H, cronjob="on-time"))
    engine.handle(failed("b", D1 - 30 * M, cronjob="flaky"))
    engine.handle(
        JobSeen(
            "evil-1",
            "ml",
            EVIL_RUN,
            cronjob="evil",
            outcome="failed",
            reason=EVIL_REASON,
            start_time=D1 - 2 * H,
            failed_at=D1 - H,
        )
    )
    engine.handle(SourceHealth(KUBERNETES, reachable=True, last_contact=NOW))
    engine.handle(SourceHealth(CLOUD_LOGGING, False, NOW - 2 * M, detail="<b>429</b> quota"))
    advance(engine, NOW)
    return engine


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> dict[str, object]:
        document = json.loads(self.body)
        assert isinstance(document, dict)
        return document


def fetch(url: str, method: str = "GET", accept: str | None = None) -> Reply:
    request = urllib.request.Request(url, method=method)
    if accept is not None:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


@dataclass
class Served:
    status: LatestStatus
    metrics: Metrics
    url: str

    def publish(self, engine: Engine, leader: bool = True, synced: bool = True) -> None:
        self.status.publish(
            StatusSnapshot.from_engine(engine, leader=leader, synced=synced, generated_at=NOW)
        )


CLOCK = 1_800_000_000.0


@pytest.fixture
def served() -> Iterator[Served]:
    status = LatestStatus()
    metrics = Metrics(clock=lambda: CLOCK)
    with StatusServer(status, metrics, host="127.0.0.1", port=0) as server:
        assert server.address[1] != 0
        yield Served(status, metrics, server.url.rstrip("/"))


def test_healthz_answers_before_anything_is_published(served: Served) -> None:
    reply = fetch(served.url + "/healthz")
    assert (reply.status, reply.body) == (200, b"ok\n")


def test_readyz_is_503_until_the_sources_synced(served: Served) -> None:
    assert fetch(served.url + "/readyz").status == 503  # nothing published yet
    engine = scenario_engine()
    served.publish(engine, synced=False)
    reply = fetch(served.url + "/readyz")
    assert reply.status == 503
    assert reply.json()["ready"] is False
    served.publish(engine, synced=True)
    reply = fetch(served.url + "/readyz")
    assert reply.status == 200
    document = reply.json()
    assert (document["ready"], document["leader"]) == (True, True)
    sources = document["sources"]
    assert isinstance(sources, dict)
    assert sources[KUBERNETES]["up"] is True
    assert sources[CLOUD_LOGGING]["up"] is False


def test_a_standby_follower_is_ready_and_says_it_is_not_leader(served: Served) -> None:
    served.publish(scenario_engine(), leader=False, synced=False)
    reply = fetch(served.url + "/readyz")
    assert reply.status == 200
    assert (reply.json()["ready"], reply.json()["leader"]) == (True, False)
    assert fetch(served.url + "/api/status").json()["leader"] is False


def test_api_status_has_the_spec_shape_and_each_state(served: Served) -> None:
    served.publish(scenario_engine())
    reply = fetch(served.url + "/api/status?pretty=1")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    document = reply.json()
    assert document["leader"] is True
    assert document["generated_at"] == "2026-11-26T09:01:00+00:00"
    batches = document["batches"]
    assert isinstance(batches, list)
    spec_keys = {"name", "schedule", "state", "last_success", "next_deadline", "open_alerts"}
    for batch in batches:
        assert spec_keys <= batch.keys()
    seen = {
        b["name"]: (b["schedule"], b["state"], b["last_success"], b["next_deadline"])
        for b in batches
    }
    tomorrow = "2026-11-27T09:00:00+00:00"
    assert seen == {
        "on-time": ("deadline", "ok", "2026-11-26T08:00:00+00:00", tomorrow),
        "soon": ("deadline", "due", None, "2026-11-26T10:00:00+00:00"),
        "late": ("deadline", "missed", None, tomorrow),
        "fresh": ("freshness", "stale", None, "2026-11-26T00:30:00+00:00"),
        "flaky": ("deadline", "failing", None, "2026-11-26T12:00:00+00:00"),
        HOSTILE: ("deadline", "missed", None, tomorrow),
    }
    alerts = {b["name"]: b["open_alerts"] for b in batches}
    assert alerts["late"] == ["late@2026-11-26T09:00:00+00:00"]
    assert alerts["fresh"] == ["stale:fresh@2026-11-26T00:30:00+00:00"]
    assert alerts["on-time"] == alerts["soon"] == alerts["flaky"] == []
    history = document["history"]
    assert isinstance(history, list)
    assert {entry["key"] for entry in history} >= {
        "late@2026-11-26T09:00:00+00:00",
        "job_failed:ml/flaky-b@b",
    }


@dataclass
class Row:
    """One table row of the page: its class, its cells' text, and for a batch its name and
    the cells of its run strip ({kind: data-run, title, label: the accessible text})."""

    kind: str
    name: str = ""
    cells: list[str] = field(default_factory=list)
    runs: list[dict[str, str]] = field(default_factory=list)
    times: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return self.kind.split()


class PageParser(HTMLParser):
    """Reads the status page (as served, or as a browser's DOM) into rows and tags."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[Row] = []
        self.title = ""
        self._cell: list[str] | None = None
        self._run: dict[str, str] | None = None
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        classes = (named.get("class") or "").split()
        self.tags.append((tag, named))
        self._open.append(tag)
        if tag == "tr":
            self.rows.append(Row(named.get("class") or ""))
        elif tag == "td":
            self._cell = []
        elif tag == "li" and "run" in classes and self.rows:
            self._run = {"kind": named.get("data-run") or "", "title": named.get("title") or ""}
            self._run["label"] = ""
            self.rows[-1].runs.append(self._run)
        elif tag == "strong" and "name" in classes and self.rows:
            self._open[-1] = "name"
        elif tag == "time" and self.rows and self._cell is not None:
            self.rows[-1].times.append(named.get("datetime") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()
        if tag == "td" and self._cell is not None:
            self.rows[-1].cells.append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "li":
            self._run = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._run is not None:
            self._run["label"] += data
        if self._open and self._open[-1] == "name":
            self.rows[-1].name += data
        if self._open and self._open[-1] == "title":
            self.title += data

    def batches(self) -> dict[str, Row]:
        """Batch rows by name, in page order; each with its open-alerts row's text appended
        as one more cell."""
        found: dict[str, Row] = {}
        last: Row | None = None
        for row in self.rows:
            if "batch" in row.classes:
                found[row.name] = last = row
            elif "alerts" in row.classes and last is not None:
                last.cells.append(row.cells[-1])
        return found

    def of_kind(self, kind: str) -> list[Row]:
        return [row for row in self.rows if kind in row.classes]


def parse_page(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def assert_nothing_runs(parser: PageParser) -> None:
    """No element that could run or load anything, and no event handler attribute."""
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "iframe", "object", "embed", "img", "link", "form"}
    handlers = [
        (tag, name) for tag, attrs in parser.tags for name in attrs if name.startswith("on")
    ]
    assert handlers == []


def test_status_page_shows_every_batch_and_escapes_hostile_text(served: Served) -> None:
    served.publish(scenario_engine())
    reply = fetch(served.url + "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    page = reply.body.decode()
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&amp;y&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;429&lt;/b&gt; quota" in page
    assert '<meta http-equiv="refresh" content="10">' in page
    parser = parse_page(page)
    assert_nothing_runs(parser)
    batches = parser.batches()
    states = {name: row.cells[1] for name, row in batches.items()}
    assert states == {
        "on-time": "ok",
        "soon": "due soon",
        "late": "missed",
        "fresh": "stale",
        "flaky": "failing",
        HOSTILE: "missed",
    }
    # Open incidents first, so a person sees what is wrong without scrolling.
    assert list(states) == ["late", HOSTILE, "fresh", "flaky", "soon", "on-time"]
    late = batches["late"]
    assert late.cells[0] == "late At 09:00, every day (UTC)"
    assert late.cells[6] == "2026-11-27 09:00:00 UTC in 23h 59m"
    assert late.cells[-1] == "Open alerts: late@2026-11-26T09:00:00+00:00"
    assert batches["fresh"].cells[0] == "fresh Success every 30m"
    assert batches["on-time"].cells[3:5] == ["100%", "—"]
    hostile = batches[HOSTILE]
    assert hostile.cells[-1] == f"Open alerts: {HOSTILE}@2026-11-26T09:00:00+00:00"
    # A hostile run name and failure reason stay text, in the tooltip and the label alike.
    [run] = hostile.runs
    assert run["kind"] == "failed"
    assert run["title"].startswith(f"failed: {EVIL_RUN} ({EVIL_REASON}), started ")
    assert run["label"] == run["title"]
    sources = {row.cells[0]: row.cells[1] for row in parser.of_kind("source")}
    assert sources == {CLOUD_LOGGING: "down", KUBERNETES: "up"}
    history_keys = [row.cells[3] for row in parser.of_kind("alert")]
    assert "job_failed:ml/flaky-b@b" in history_keys


def _job(uid: str, start: datetime, end: datetime | None, outcome: str, cronjob: str) -> JobSeen:
    common = {"uid": uid, "namespace": "ml", "name": f"{cronjob}-{uid}", "cronjob": cronjob}
    if outcome == "succeeded":
        return JobSeen(**common, start_time=start, outcome="succeeded", completion_time=end)
    if outcome == "failed":
        return JobSeen(
            **common, start_time=start, outcome="failed", reason="Evicted", failed_at=end
        )
    return JobSeen(**common, start_time=start)


def _last_change(job: JobSeen) -> datetime:
    instant = job.completion_time or job.failed_at or job.start_time
    assert instant is not None
    return instant


def strip_engine() -> Engine:
    """Three days of one Tokyo batch (09:00 JST, 5m grace): on time, late, failed, running;
    and a freshness batch whose successes are not judged."""
    tokyo = ZoneInfo("Asia/Tokyo")
    config = make_config(
        deadline_batch("daily", grace="5m", timezone="Asia/Tokyo"),
        {"name": "fresh", "match": {"cronjob": "fresh"}, "freshness": "1d"},
    )
    day = datetime(2026, 11, 23, 8, 30, tzinfo=tokyo)
    engine = Engine(config, started_at=day - 8 * H)
    advance(engine, day - 8 * H)
    facts = [
        _job("a", day, day + 35 * M, "succeeded", "daily"),  # 09:05: on time by its grace
        _job("b", day + 24 * H, day + 24 * H + 35 * M + timedelta(seconds=1), "succeeded", "daily"),
        _job("c", day + 48 * H, day + 48 * H + 10 * M, "failed", "daily"),
        _job("d", day + 48 * H + 15 * M, None, "running", "daily"),
        _job("f", day, day + M + timedelta(microseconds=250_000), "succeeded", "fresh"),
    ]
    for fact in sorted(facts, key=_last_change):  # delivered, then the watch moves past it
        engine.handle(fact)
        advance(engine, _last_change(fact))
    advance(engine, day + 48 * H + 20 * M)
    return engine


def test_runs_say_whether_they_were_on_time_and_the_strip_shows_them_oldest_first(
    served: Served,
) -> None:
    engine = strip_engine()
    now = engine.now
    served.status.publish(
        StatusSnapshot.from_engine(engine, leader=True, synced=True, generated_at=now)
    )
    document = fetch(served.url + "/api/status").json()
    batches = {b["name"]: b for b in document["batches"]}  # type: ignore[attr-defined]
    daily = batches["daily"]
    assert daily["timezone"] == "Asia/Tokyo"
    assert [(r["name"], r["outcome"], r["on_time"]) for r in daily["runs"]] == [
        ("daily-d", "running", None),
        ("daily-c", "failed", None),
        ("daily-b", "succeeded", False),  # 09:05:01: one second past 09:00 + grace
        ("daily-a", "succeeded", True),  # 09:05:00 exactly
    ]
    assert [r["on_time"] for r in batches["fresh"]["runs"]] == [None]
    parser = parse_page(fetch(served.url + "/").body.decode())
    rows = parser.batches()
    strip = rows["daily"].runs
    assert [cell["kind"] for cell in strip] == ["on time", "late", "failed", "running"]
    assert [cell["label"] for cell in strip] == [cell["title"] for cell in strip]
    assert strip[0]["title"] == (
        "on time: daily-a, started 2026-11-23 08:30:00 JST, "
        "finished 2026-11-23 09:05:00 JST, took 35m"
    )
    assert strip[2]["title"].startswith("failed: daily-c (Evicted), started 2026-11-25")
    assert strip[3]["title"] == "running: daily-d, started 2026-11-25 08:45:00 JST"
    assert [cell["kind"] for cell in rows["fresh"].runs] == ["succeeded"]
    # In the batch's own zone, to the second; the exact instant stays in the markup.
    assert rows["daily"].cells[0] == "daily At 09:00, every day (Asia/Tokyo)"
    assert rows["daily"].cells[5].startswith("2026-11-24 09:05:01 JST ")
    assert rows["daily"].times[0] == "2026-11-24T09:05:01+09:00"
    assert rows["fresh"].cells[5].startswith("2026-11-22 23:31:00 UTC ")  # no microseconds
    assert rows["daily"].cells[3:5] == ["50%", "35m"]


def test_run_on_time_is_judged_against_the_first_deadline_at_or_after_its_start() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    rule = DeadlineRule(cron_schedule("0 9 * * *", tokyo), window=None, grace=5 * M)
    nine = datetime(2026, 11, 26, 9, 0, tzinfo=tokyo)

    def judged(start: datetime | None, end: datetime | None, outcome: str = "succeeded") -> object:
        return run_on_time(Run("u", "n", start, end, outcome), rule)  # type: ignore[arg-type]

    assert judged(nine - H, nine + 5 * M) is True
    assert judged(nine - H, nine + 5 * M + timedelta(microseconds=1)) is False
    assert judged(nine, nine + 5 * M) is True  # a start at the deadline is judged by it
    assert judged(nine + timedelta(seconds=1), nine + 5 * M) is True  # tomorrow's
    assert judged(nine - H, nine + 24 * H) is False
    assert judged(None, nine) is None
    assert judged(nine - H, nine, "failed") is None
    assert judged(nine - H, None, "running") is None
    assert run_on_time(Run("u", "n", nine - H, nine, "succeeded"), None) is None


def test_crons_are_described_in_words_with_seconds_first_and_fall_back_to_the_text(
    served: Served,
) -> None:
    assert describe_cron("0 9 * * *") == "At 09:00, every day"
    assert describe_cron("30 0 9 * * MON-FRI") == "At 09:00:30, Monday through Friday"
    assert describe_cron("0 0 9 ? * *") == "At 09:00, every day"  # seconds first, not a year
    assert describe_cron("0 6 * * 1") == "At 06:00, only on Monday"
    assert describe_cron("H 9 * * *") is None
    snapshot = StatusSnapshot.from_engine(
        scenario_engine(), leader=True, synced=True, generated_at=NOW
    )
    odd = [{**b, "rule": "H <9> * * *"} if b["name"] == "late" else b for b in snapshot.batches]
    served.status.publish(replace(snapshot, batches=odd))
    rows = parse_page(fetch(served.url + "/").body.decode()).batches()
    assert rows["late"].cells[0] == "late H <9> * * * (UTC)"
    assert rows["soon"].cells[0] == "soon At 10:00, every day (UTC)"


def test_states_the_page_does_not_know_yet_are_shown_by_name(served: Served) -> None:
    """silenced, at_risk and any later state: named, coloured, sorted; silenced marked."""
    snapshot = StatusSnapshot.from_engine(
        scenario_engine(), leader=True, synced=True, generated_at=NOW
    )
    renamed = {"on-time": "silenced", "soon": "at_risk", "flaky": "<b>new</b>"}
    batches = [{**b, "state": renamed.get(b["name"], b["state"])} for b in snapshot.batches]
    served.status.publish(replace(snapshot, batches=batches))
    page = fetch(served.url + "/").body.decode()
    parser = parse_page(page)
    rows = parser.batches()
    states = {name: row.cells[1] for name, row in rows.items()}
    assert states == {
        "late": "missed",
        HOSTILE: "missed",
        "fresh": "stale",
        "soon": "at risk",
        "flaky": "<b>new</b>",
        "on-time": "silenced",
    }
    assert list(states) == ["late", HOSTILE, "fresh", "soon", "flaky", "on-time"]
    assert "silenced" in rows["on-time"].classes
    assert "silenced" not in rows["late"].classes
    assert "&lt;b&gt;new&lt;/b&gt;" in page
    assert parser.title == "sla-monitor: 2 missed, 1 stale, 1 at risk, 1 <b>new</b>, 1 silenced"
    badges = {
        attrs.get("style")
        for tag, attrs in parser.tags
        if tag == "span" and attrs.get("class") == "badge"
    }
    assert "background:#57606a" in badges  # the neutral colour of an unknown state


def test_metrics_parse_and_carry_what_the_daemon_reported(served: Served) -> None:
    metrics = served.metrics
    metrics.alert_posted("missed_deadline")
    metrics.alert_posted("missed_deadline")
    metrics.decision("late", "missed")
    metrics.decision("on-time", "met")
    metrics.set_source(KUBERNETES, up=True, last_event_at=datetime.fromtimestamp(CLOCK - 42, UTC))
    metrics.set_source(CLOUD_LOGGING, up=False)
    metrics.watch_restarted()
    metrics.relisted()
    metrics.set_outbox(3, oldest_enqueued_at=datetime.fromtimestamp(CLOCK - 7.5, UTC))
    metrics.observe_post_latency(0.03)
    metrics.observe_post_latency(12.0)
    metrics.ticked(datetime.fromtimestamp(CLOCK - 1, UTC))
    metrics.set_leader(True)
    metrics.config_reloaded(ok=False)
    metrics.state_saved(0.02, 2048)

    reply = fetch(served.url + "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.body.decode())
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[("sla_monitor_" + name, tuple(sorted(labels.items())))]

    assert value("alerts_posted_total", kind="missed_deadline") == 2
    assert value("state_save_seconds_count") == 1
    assert value("state_save_seconds_bucket", le="0.01") == 0
    assert value("state_save_seconds_bucket", le="0.025") == 1
    assert value("alerts_posted_total", kind="stale") == 0  # exported before first use
    assert value("decisions_total", batch="late", outcome="missed") == 1
    assert value("decisions_total", batch="on-time", outcome="met") == 1
    assert value("source_up", source=KUBERNETES) == 1
    assert value("source_up", source=CLOUD_LOGGING) == 0
    assert value("source_last_event_age_seconds", source=KUBERNETES) == 42
    assert value("watch_restarts_total") == value("relists_total") == 1
    assert value("outbox_depth") == 3
    assert value("outbox_oldest_age_seconds") == 7.5
    assert value("slack_post_latency_seconds_bucket", le="0.05") == 1
    assert value("slack_post_latency_seconds_bucket", le="30.0") == 2
    assert value("slack_post_latency_seconds_count") == 2
    assert value("last_tick_timestamp_seconds") == CLOCK - 1
    assert value("leader") == 1
    assert value("config_reloads_total", result="invalid") == 1
    assert value("config_reloads_total", result="ok") == 0
    assert value("state_saves_total") == 1
    assert value("state_size_bytes") == 2048

    metrics.set_outbox(0, oldest_enqueued_at=None)
    body = fetch(served.url + "/metrics").body.decode()
    assert "sla_monitor_outbox_oldest_age_seconds 0.0" in body


def test_metrics_speak_openmetrics_when_asked(served: Served) -> None:
    reply = fetch(served.url + "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
    assert reply.body.endswith(b"# EOF\n")


def test_two_metric_sets_in_one_process_do_not_clash() -> None:
    first, second = Metrics(), Metrics()
    first.alert_posted("stale")
    assert b'sla_monitor_alerts_posted_total{kind="stale"} 1.0' in first.exposition()[0]
    assert b'sla_monitor_alerts_posted_total{kind="stale"} 0.0' in second.exposition()[0]


def test_unknown_paths_are_404_and_other_methods_405(served: Served) -> None:
    assert fetch(served.url + "/nope").status == 404
    assert fetch(served.url + "/api/status/extra").status == 404
    reply = fetch(served.url + "/api/status", method="POST")
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/api/status", "/", "/nope"])
def test_head_sends_the_headers_of_get_without_a_body(served: Served, path: str) -> None:
    served.publish(scenario_engine())
    got, head = fetch(served.url + path), fetch(served.url + path, method="HEAD")
    assert head.status == got.status
    assert head.body == b""
    assert head.headers["Content-Length"] == str(len(got.body))
    assert head.headers["Content-Type"] == got.headers["Content-Type"]


class _BrokenStatus:
    def status_snapshot(self) -> StatusSnapshot:
        raise RuntimeError("engine state unavailable")

    def readiness(self) -> StatusSnapshot:
        raise RuntimeError("engine state unavailable")


class _CountingStatus:
    """A source that says which of its two views the server asked for."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.asked: list[str] = []

    def _build(self, view: str, batches: bool) -> StatusSnapshot:
        self.asked.append(view)
        return StatusSnapshot.from_engine(
            self.engine, leader=True, synced=True, generated_at=self.engine.now, batches=batches
        )

    def status_snapshot(self) -> StatusSnapshot:
        return self._build("full", batches=True)

    def readiness(self) -> StatusSnapshot:
        return self._build("readiness", batches=False)


def test_readyz_never_asks_for_the_batches_and_the_status_does() -> None:
    source = _CountingStatus(scenario_engine())
    with StatusServer(source, Metrics(), host="127.0.0.1", port=0) as server:
        for _ in range(5):
            reply = fetch(server.url + "readyz")
            assert reply.status == 200
            assert reply.json()["ready"] is True
        assert source.asked == ["readiness"] * 5
        batches = fetch(server.url + "api/status").json()["batches"]
        assert isinstance(batches, list)
        assert len(batches) == 6
        assert source.asked[-1] == "full"


def test_a_readiness_snapshot_has_the_sources_but_no_batches() -> None:
    engine = scenario_engine()
    full = StatusSnapshot.from_engine(engine, leader=True, synced=False, generated_at=NOW)
    light = StatusSnapshot.from_engine(
        engine, leader=True, synced=False, generated_at=NOW, batches=False
    )
    assert full.batches
    assert full.history
    assert light.batches == []
    assert light.history == []
    assert (light.ready, light.leader, light.sources) == (full.ready, full.leader, full.sources)


def test_the_server_keeps_no_snapshot_alive_once_its_source_lets_it_go(served: Served) -> None:
    engine = scenario_engine()
    served.publish(engine)
    first = weakref.ref(served.status.status_snapshot())
    assert fetch(served.url + "/api/status").status == 200
    assert fetch(served.url + "/").status == 200
    served.publish(engine)  # the source now holds a newer one
    gc.collect()
    assert first() is None  # neither it nor its rendered responses are kept
    assert fetch(served.url + "/api/status").status == 200
    assert served.status.status_snapshot() is not None


def test_concurrent_readers_while_snapshots_are_replaced(served: Served) -> None:
    engine = scenario_engine()
    failures: list[str] = []

    def read() -> None:
        for path in ("/", "/api/status", "/metrics", "/readyz") * 5:
            reply = fetch(served.url + path)
            if reply.status != 200:
                failures.append(f"{path}: {reply.status}")

    served.publish(engine)  # before any reader: the starting snapshot is not ready (503)
    readers = [threading.Thread(target=read) for _ in range(6)]
    for reader in readers:
        reader.start()
    for _ in range(50):
        served.publish(engine)
    for reader in readers:
        reader.join(timeout=patient(20))
    assert not any(reader.is_alive() for reader in readers)
    assert failures == []


def test_on_demand_status_builds_once_per_max_age_from_the_live_engine() -> None:
    engine = scenario_engine()
    builds: list[datetime] = []
    clock = [100.0]

    def build() -> StatusSnapshot:
        builds.append(engine.now)
        return StatusSnapshot.from_engine(engine, leader=True, synced=True, generated_at=engine.now)

    status = OnDemandStatus(build, max_age=1.0, clock=lambda: clock[0])
    with StatusServer(status, Metrics(), host="127.0.0.1", port=0) as server:
        assert fetch(server.url + "healthz").status == 200
        assert builds == []  # nothing is built until someone asks for status
        first = fetch(server.url + "api/status").json()
        assert fetch(server.url + "readyz").status == 200
        assert len(builds) == 1
        advance(engine, D1 + 2 * H)  # 11:00: "soon" (10:00) is now missed
        assert fetch(server.url + "api/status").json() == first  # still within max_age
        clock[0] += 1.0
        later = fetch(server.url + "api/status").json()
        assert len(builds) == 2
        batches = later["batches"]
        assert isinstance(batches, list)
        assert {b["name"]: b["state"] for b in batches}["soon"] == "missed"


def test_silent_and_vanishing_clients_do_not_block_others(served: Served) -> None:
    host, port = urllib.parse.urlsplit(served.url).netloc.split(":")
    with socket.create_connection((host, int(port))) as silent:
        for _ in range(20):
            socket.create_connection((host, int(port))).close()
        assert fetch(served.url + "/healthz").status == 200
        silent.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert silent.recv(64).startswith(b"HTTP/1.0 200")


def test_stop_releases_the_port() -> None:
    server = StatusServer(LatestStatus(), Metrics(), host="127.0.0.1", port=0)
    server.start()
    url = server.url
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "healthz", timeout=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":9090", ("0.0.0.0", 9090)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:http", "host:70000"])
def test_parse_listen_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(text)


def test_the_example_status_page_in_docs_is_current() -> None:
    script = ROOT / "docs" / "make_status_page.py"
    spec = importlib.util.spec_from_file_location("make_status_page", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rendered = module.render_example()
    assert rendered == (ROOT / "docs" / "status-page.html").read_text(encoding="utf-8"), (
        "docs/status-page.html is stale: run python docs/make_status_page.py"
    )
    for state in ("ok", "due soon", "missed", "stale", "failing", "running"):
        assert f">{state}</span>" in rendered
