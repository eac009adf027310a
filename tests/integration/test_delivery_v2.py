"""Delivery under storms and hostile input, through slack_sdk to the fake Slack Web API.

The alerts are ones the engine really makes (a traceback and the failure of one Job; a
missed deadline), fed to the notifier as the daemon does.
"""

from __future__ import annotations

import dataclasses
import http.server
import random
import string
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.config.model import Config
from monitor.core.engine import Engine
from monitor.core.facts import JobSeen, Post, TracebackSeen
from monitor.notify.pacing import ChannelPace
from monitor.notify.render import RenderSettings, render_post
from monitor.notify.routing import ConfigRouter
from monitor.notify.slack import REFUSED_PREFIX, Notifier
from monitor.notify.storm import StormGate
from monitor.notify.transport import Delivery, DeliveryError, SlackTransport
from monitor.runtime.configmap_store import ConfigMapStore
from monitor.runtime.state import StateDocument
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.kube_store import CONFIGMAP_LIMIT
from monitor.testing.slack_api import FakeSlackApi
from monitor.testing.wait import patient, timing_bound, wait_until

TOKEN = "xoxb-test-token"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
CONFIG = Config.model_validate(
    {
        "slack": {"channel": "#alerts"},
        "batches": [
            {
                "name": "score",
                "match": {"namespace": "ml", "cronjob": "score"},
                "freshness": "1h",
            },
            {
                "name": "quiet",
                "match": {"namespace": "ml", "cronjob": "quiet"},
                "freshness": "1h",
                "slack": {"channel": "#quiet"},
            },
        ],
    }
)


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    # Slack's own pace: about one post per second per channel, short bursts allowed.
    with FakeSlackApi(token=TOKEN, channels={"alerts": True, "quiet": True}, pace=(1.0, 5)) as fake:
        yield fake


def notifier_for(slack: FakeSlackApi, **options: Any) -> Notifier:
    notifier = Notifier(
        SlackTransport(TOKEN, slack.url, retries=0),
        router=ConfigRouter(CONFIG),
        settings=options.pop("settings", RenderSettings()),
        initial_backoff=0.2,
        max_backoff=1.0,
        pace=lambda: ChannelPace(rate=1.0, burst=4, initial_backoff=0.2, max_backoff=1.0),
        **options,
    )
    notifier.start()
    return notifier


def engine() -> Engine:
    return Engine(CONFIG, started_at=START)


def failed_job(n: int, cronjob: str = "score") -> JobSeen:
    return JobSeen(
        uid=f"uid-{n}",
        namespace="ml",
        name=f"{cronjob}-{n}",
        cronjob=cronjob,
        outcome="failed",
        reason="BackoffLimitExceeded",
        failed_at=START + timedelta(minutes=1, milliseconds=n),
    )


def traceback_of(job: str, at: datetime, final: str = "KeyError: 'user_id'") -> TracebackSeen:
    return TracebackSeen(
        namespace="ml",
        pod=f"{job}-x7k2p",
        container="main",
        job=job,
        time=at,
        first_line="Traceback (most recent call last):",
        final_line=final,
        cronjob=job.rsplit("-", 1)[0],
    )


def delivered_keys(slack: FakeSlackApi) -> list[str]:
    """Every alert key Slack received: top-level posts, replies, and inside digests."""
    keys: list[str] = []
    for message in slack.messages:
        payload = message.payload
        if payload.get("kind") == "digest":
            keys += [alert["key"] for alert in payload["alerts"]]
        else:
            keys.append(payload["key"])
    return keys


def test_a_storm_becomes_a_digest_and_a_missed_deadline_overtakes_it(
    slack: FakeSlackApi,
) -> None:
    eng = engine()
    failures = [a for n in range(150) for a in eng.handle(failed_job(n))]
    assert len(failures) == 150
    notifier = notifier_for(slack, storm=StormGate(threshold=10, window=60.0, gather=2.0))
    try:
        began = time.monotonic()
        notifier.submit(failures[:75])
        time.sleep(0.2)  # the SLA alert becomes due in the middle of the storm
        stale = Post("stale", "score", "stale:score@t", datetime.now(UTC), {})
        stale_due = time.monotonic()
        notifier.submit([stale, *failures[75:]])
        assert notifier.flush(patient(30))
        stale_message = next(m for m in slack.messages if m.payload.get("key") == stale.key)
        assert stale_message.arrived - stale_due <= timing_bound(2.0)
    finally:
        notifier.stop()
    keys = delivered_keys(slack)
    expected = {post.key for post in failures} | {stale.key}
    assert sorted(keys) == sorted(expected)  # every key exactly once
    messages = slack.messages_in("alerts")
    first_minute = [m for m in messages if m.arrived - began <= 60]
    assert len(first_minute) <= 15
    [digest] = [m for m in messages if m.payload.get("kind") == "digest"]
    assert digest.payload["batch"] == ""
    assert digest.payload["key"].startswith("digest:#alerts@")
    assert len(digest.payload["alerts"]) == 140  # 150 failures, 10 posted one by one
    assert {alert["kind"] for alert in digest.payload["alerts"]} == {"job_failed"}
    assert stale.key not in {alert["key"] for alert in digest.payload["alerts"]}
    # Slack's pace was kept: no post was refused with a 429.
    assert not [r for r in slack.requests if r.status == 429]


def test_a_runs_traceback_and_failure_are_one_post_and_one_reply(slack: FakeSlackApi) -> None:
    eng = engine()
    job = failed_job(7)
    actions = eng.handle(traceback_of(job.name, START + timedelta(seconds=50))) + eng.handle(job)
    assert [a.kind for a in actions] == ["traceback", "job_failed"]
    notifier = notifier_for(slack)
    try:
        notifier.submit(actions)
        assert notifier.flush(patient(10))
    finally:
        notifier.stop()
    first, reply = slack.messages_in("alerts")
    assert first.payload["kind"] == "traceback"
    assert first.thread_ts is None
    assert reply.payload["kind"] == "job_failed"
    assert reply.thread_ts == first.ts
    # Another run's failure is a new top-level post, not a reply in that thread.
    other = eng.handle(failed_job(8))
    notifier = notifier_for(slack, saved=None)
    try:
        notifier.submit(other)
        assert notifier.flush(patient(10))
    finally:
        notifier.stop()
    assert slack.messages_in("alerts")[-1].thread_ts is None


def test_an_unrenderable_alert_goes_out_as_text_and_holds_up_nothing(
    slack: FakeSlackApi,
) -> None:
    eng = engine()
    # A forged log line with a year-9999 timestamp: its Logs Explorer link cannot be built.
    poison = eng.handle(traceback_of("score-1", datetime(9999, 12, 31, 23, 59, tzinfo=UTC)))
    assert [a.kind for a in poison] == ["traceback"]
    after = eng.handle(failed_job(2))
    notifier = notifier_for(slack, settings=RenderSettings(logs_project="p", logs_cluster="c"))
    try:
        notifier.submit(poison)
        submitted = time.monotonic()
        notifier.submit(after)
        assert notifier.flush(patient(10))
    finally:
        notifier.stop()
    first, second = slack.messages_in("alerts")
    assert first.payload["key"] == poison[0].key
    assert first.blocks is None  # the plain-text fallback
    assert first.text is not None
    assert poison[0].key in first.text
    assert second.payload["key"] == after[0].key
    assert second.arrived - submitted <= timing_bound(2.0)


def test_an_alert_slack_refuses_for_good_is_reported_once_and_the_next_one_goes(
    slack: FakeSlackApi,
) -> None:
    eng = engine()
    refused, after = eng.handle(failed_job(1)), eng.handle(failed_job(2))
    slack.fail("chat.postMessage", "msg_too_long", times=2)  # the blocks, then the text
    notifier = notifier_for(slack)
    try:
        notifier.submit(refused)
        notifier.submit(after)
        assert notifier.flush(patient(10))
        health = notifier.health()
    finally:
        notifier.stop()
    posted = [m.payload["key"] for m in slack.messages_in("alerts")]
    assert refused[0].key not in posted
    assert after[0].key in posted
    reports = [key for key in posted if key.startswith(REFUSED_PREFIX)]
    assert len(reports) == 1
    report = next(m for m in slack.messages if m.payload["key"] == reports[0])
    assert report.payload["kind"] == "monitor_degraded"
    assert report.text is not None
    assert refused[0].key in report.text or "refused" in report.text
    assert health.dead_letters == 1


def test_a_rate_limited_channel_never_delays_another(slack: FakeSlackApi) -> None:
    eng = engine()
    busy = eng.handle(failed_job(1))
    quiet = [
        dataclasses.replace(post, key=post.key + "-q")
        for post in eng.handle(failed_job(2, "quiet"))
    ]
    slack.rate_limit_channel("alerts", times=1, retry_after=2)
    notifier = notifier_for(slack)
    try:
        wait_until(lambda: any(r.method == "auth.test" for r in slack.requests), timeout=5)
        began = time.monotonic()
        notifier.submit(busy + quiet)
        wait_until(lambda: slack.messages_in("quiet"), timeout=5)
        quiet_after = slack.messages_in("quiet")[0].arrived - began
        assert notifier.flush(patient(30))
    finally:
        notifier.stop()
    [late] = slack.messages_in("alerts")
    assert late.arrived - began >= 2.0  # it waited for Retry-After
    assert quiet_after <= timing_bound(1.0)  # the other channel did not


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A host that records every request's Authorization header."""

    seen: list[str | None]
    location: str | None = None  # when set: answer 302 to it instead

    def do_POST(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.location is not None:
            self.send_response(302)
            self.send_header("Location", self.location + self.path.rsplit("/", 1)[-1])
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.HTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_bot_token_never_follows_a_redirect_to_another_host() -> None:
    elsewhere_seen: list[str | None] = []
    api_seen: list[str | None] = []
    elsewhere = _serve(type("Elsewhere", (_Recorder,), {"seen": elsewhere_seen}))
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}/api/"
    api = _serve(type("Api", (_Recorder,), {"seen": api_seen, "location": target}))
    try:
        transport = SlackTransport(
            TOKEN, f"http://127.0.0.1:{api.server_address[1]}/api/", retries=0
        )
        [post] = engine().handle(failed_job(1))
        assert isinstance(post, Post)
        message = render_post(post, RenderSettings())
        with pytest.raises(DeliveryError) as refused:
            transport.post(Delivery("#alerts", message, post.kind, post.batch, post.key))
    finally:
        api.shutdown()
        elsewhere.shutdown()
    assert api_seen == [f"Bearer {TOKEN}"]  # the configured host got the token
    assert elsewhere_seen == []  # the redirect was never followed
    assert refused.value.error_class == "transient"  # kept and retried, never dropped


def test_a_storm_of_10000_alerts_fits_the_state_configmap_and_survives_a_kill(
    slack: FakeSlackApi,
) -> None:
    """The outbox is saved in a ConfigMap (1 MiB, enforced by the fake API server) before
    `submit` returns; a process killed right after loses nothing: its successor, reading the
    same ConfigMap, delivers every key exactly once."""
    eng = engine()
    rng = random.Random(5)
    storm: list[Post] = []
    for n in range(10_000):
        if n % 2:
            made = eng.handle(failed_job(n))
        else:  # tracebacks with long, incompressible final lines: the worst case for size
            final = "ValueError: " + "".join(rng.choices(string.ascii_letters, k=200))
            made = eng.handle(traceback_of(f"score-{n}", START + timedelta(seconds=n / 100), final))
        storm += [action for action in made if isinstance(action, Post)]
    assert len(storm) == 10_000
    with FakeKubeApi() as kube:
        store = ConfigMapStore(kube.api_client(), "default", "sla-monitor-outbox")
        document = StateDocument(store)
        killed = Notifier(
            SlackTransport(TOKEN, slack.url),
            router=ConfigRouter(CONFIG),
            saved=document.section("outbox"),
            persist=lambda outbox: document.put("outbox", outbox),
        )  # never started: it "dies" right after the alerts are saved
        killed.submit(storm)
        assert store.last_size <= CONFIGMAP_LIMIT  # saved, and within the limit
        reread = StateDocument(ConfigMapStore(kube.api_client(), "default", "sla-monitor-outbox"))
        successor = notifier_for(
            slack,
            saved=reread.section("outbox"),
            storm=StormGate(threshold=10, window=60.0, gather=1.0),
        )
        try:
            assert successor.flush(patient(60))
        finally:
            successor.stop()
    assert sorted(delivered_keys(slack)) == sorted(post.key for post in storm)
    assert len(slack.messages) <= 15
