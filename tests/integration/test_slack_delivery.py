"""Delivery through the real slack_sdk to the fake Slack Web API: order, retries, restarts."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.model import Config
from monitor.core.facts import Post, Resolve
from monitor.notify.routing import ConfigRouter
from monitor.notify.slack import Notifier
from monitor.notify.transport import SlackTransport, StdoutTransport, transport_from_env
from monitor.runtime.state import FileStore, StateDocument
from monitor.testing.slack_api import FakeSlackApi
from monitor.testing.wait import patient, wait_until

TOKEN = "xoxb-test-token"
AT = datetime(2026, 11, 27, 0, 5, tzinfo=UTC)
MENTION = "<!subteam^S0123>"


def _batch(name: str, **slack: str) -> dict[str, object]:
    return {"name": name, "match": {"cronjob": name}, "deadline": "0 9 * * *", "slack": slack}


#: Each test batch routes its alerts to one channel of the fake Slack workspace.
ROUTER = ConfigRouter(
    Config.model_validate(
        {
            "slack": {"channel": "#alerts"},
            "batches": [
                _batch(
                    "recommend-daily",
                    channel="#recommend",
                    errors_channel="#alerts",
                    mention=MENTION,
                ),
                _batch("to-errors", channel="#errors"),
                _batch("to-quiet", channel="#quiet"),
                _batch("to-nowhere", channel="#no-such-channel"),
                _batch("b", mention=MENTION),
            ],
        }
    )
)
BATCH_IN = {
    None: "recommend-daily",
    "#errors": "to-errors",
    "#quiet": "to-quiet",
    "#no-such-channel": "to-nowhere",
}


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    channels = {"alerts": True, "recommend": True, "errors": True, "quiet": False}
    with FakeSlackApi(token=TOKEN, channels=channels) as fake:
        yield fake


@pytest.fixture
def document(tmp_path: Path) -> StateDocument:
    return StateDocument(FileStore(tmp_path / "state.json"))


def make_notifier(slack: FakeSlackApi, document: StateDocument) -> Notifier:
    notifier = Notifier(
        SlackTransport(TOKEN, slack.url.rstrip("/"), retries=1),  # no trailing slash: accepted
        router=ROUTER,
        saved=document.section("outbox"),
        persist=lambda outbox: document.put("outbox", outbox),
        initial_backoff=0.05,
        max_backoff=0.2,
    )
    notifier.start()
    return notifier


@pytest.fixture
def notifier(slack: FakeSlackApi, document: StateDocument) -> Iterator[Notifier]:
    notifier = make_notifier(slack, document)
    yield notifier
    notifier.stop()


def failure(n: int, channel: str | None = None) -> Post:
    """A Job failure of the batch whose errors go to `channel` (None: #alerts)."""
    return Post(
        "job_failed",
        BATCH_IN[channel],
        f"job_failed:ml-batch/job-{n}@uid-{n}",
        AT,
        {"namespace": "ml-batch", "job": f"job-{n}", "reason": "BackoffLimitExceeded"},
    )


def missed() -> Post:
    """A missed deadline of recommend-daily (channel #recommend, mentions the team)."""
    return Post(
        "missed_deadline",
        "recommend-daily",
        "recommend-daily@2026-11-27T09:00:00+09:00",
        AT,
        {"deadline": "2026-11-27T09:00:00+09:00", "grace_seconds": 0, "timezone": "Asia/Tokyo"},
    )


def recovered(post: Post) -> Resolve:
    return Resolve(
        post.key,
        "missed_deadline",
        post.batch,
        AT + timedelta(minutes=47),
        {"completed_at": (AT + timedelta(minutes=47)).isoformat(), "late_seconds": 2820},
    )


def keys(slack: FakeSlackApi, channel: str) -> list[str]:
    return [m.payload["key"] for m in slack.messages_in(channel)]


def test_every_kind_is_posted_with_blocks_text_and_exact_metadata(
    slack: FakeSlackApi, notifier: Notifier
) -> None:
    posts = [
        missed(),
        Post("stale", "feature-refresh", "stale:feature-refresh@t", AT, {"freshness_seconds": 60}),
        failure(1),
        Post("traceback", "", "traceback:ml-batch/p/c@t", AT, {"final_line": "KeyError: 'x'"}),
        Post("monitor_degraded", "", "degraded:kubernetes@t", AT, {"source": "kubernetes"}),
    ]
    assert notifier.submit(posts) == 5
    assert notifier.flush(patient(10))
    assert keys(slack, "recommend") == [missed().key]
    # SLA alerts (stale, monitor_degraded) go ahead of the diagnostics queued before them.
    assert keys(slack, "alerts") == [post.key for post in (posts[1], posts[4], posts[2], posts[3])]
    for post in posts:
        message = next(m for m in slack.messages if m.payload.get("key") == post.key)
        assert message.metadata == {
            "event_type": "sla_monitor_alert",
            "event_payload": {"kind": post.kind, "batch": post.batch, "key": post.key},
        }
        assert message.blocks
        assert message.text
    first = slack.messages_in("recommend")[0]
    assert first.text is not None
    assert first.text.startswith("<!subteam^S0123> Missed deadline: recommend-daily")
    health = notifier.health()
    assert (health.status, health.outbox_depth, health.posted_total) == ("ok", 0, 5)
    assert health.delivery_count == 5


def test_the_same_key_is_never_posted_twice(slack: FakeSlackApi, notifier: Notifier) -> None:
    assert notifier.submit([failure(1), failure(1)]) == 1
    assert notifier.flush(patient(5))
    assert notifier.submit([failure(1)]) == 0
    assert notifier.flush(patient(5))
    assert keys(slack, "alerts") == [failure(1).key]
    assert notifier.health().duplicates_total == 2


def test_a_429_storm_delays_but_loses_nothing_and_keeps_order(
    slack: FakeSlackApi, notifier: Notifier
) -> None:
    slack.rate_limit(8, retry_after=0)
    notifier.submit([failure(n) for n in range(5)])
    assert notifier.flush(patient(30))
    assert keys(slack, "alerts") == [failure(n).key for n in range(5)]
    assert sum(1 for r in slack.requests if r.status == 429) == 8


def test_retry_after_is_honoured(slack: FakeSlackApi, notifier: Notifier) -> None:
    wait_until(lambda: any(r.method == "auth.test" for r in slack.requests), timeout=5)
    slack.rate_limit(1, retry_after=1)
    notifier.submit([failure(1)])
    assert notifier.flush(patient(10))
    limited = next(r for r in slack.requests if r.status == 429)
    assert slack.messages[0].arrived - limited.arrived >= 1.0


@pytest.mark.parametrize(("mode", "refused_with"), [("reset", 0), ("503", 503)])
def test_an_outage_delays_every_alert_and_delivers_all_in_order_afterwards(
    slack: FakeSlackApi, notifier: Notifier, mode: str, refused_with: int
) -> None:
    outage = 2.5
    slack.down_for(outage, mode)
    ends = time.monotonic() + outage
    assert notifier.submit([failure(n, "#errors" if n % 2 else None) for n in range(8)]) == 8
    assert notifier.flush(patient(15))

    refused = [r for r in slack.requests if r.status == refused_with]
    assert refused, "the outage refused no request: the test proved nothing"
    assert all(r.arrived <= ends for r in refused)
    assert min(m.arrived for m in slack.messages) >= ends - 0.05  # nothing got through early
    assert keys(slack, "alerts") == [failure(n).key for n in range(0, 8, 2)]
    assert keys(slack, "errors") == [failure(n).key for n in range(1, 8, 2)]
    assert len(slack.messages) == 8
    health = notifier.health()
    assert (health.status, health.outbox_depth, health.posted_total) == ("ok", 0, 8)


def test_unsent_alerts_survive_a_restart_and_are_sent_once(
    slack: FakeSlackApi, document: StateDocument, tmp_path: Path
) -> None:
    slack.down_for(60)
    first = make_notifier(slack, document)
    first.submit([failure(n) for n in range(3)])
    first.stop()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert [e["action"]["key"] for e in saved["outbox"]["pending"]] == [
        failure(n).key for n in range(3)
    ]
    assert slack.messages == []

    slack.down_for(0)
    reloaded = StateDocument(FileStore(tmp_path / "state.json"))
    second = make_notifier(slack, reloaded)  # starts delivering what was saved, at once
    assert second.flush(patient(10))
    second.stop()
    assert keys(slack, "alerts") == [failure(n).key for n in range(3)]

    third = make_notifier(slack, StateDocument(FileStore(tmp_path / "state.json")))
    assert third.submit([failure(n) for n in range(3)]) == 0
    third.stop()
    assert len(slack.messages) == 3


def test_recovery_is_a_thread_reply_and_the_alert_is_edited(
    slack: FakeSlackApi, notifier: Notifier
) -> None:
    alert = missed()
    notifier.submit([alert, recovered(alert)])  # resolved before it was even posted
    assert notifier.flush(patient(10))
    original, reply = slack.messages_in("recommend")
    assert reply.thread_ts == original.ts
    assert reply.payload == {
        "kind": "recovered",
        "batch": "recommend-daily",
        "key": f"recovered:{alert.key}",
    }
    assert reply.text is not None
    assert "47 min late" in reply.text
    assert original.edits == 1
    assert original.blocks is not None
    assert original.blocks[0]["text"]["text"].startswith("✅ Resolved")
    assert original.payload["key"] == alert.key
    assert notifier.submit([recovered(alert)]) == 0


def test_a_refused_channel_falls_back_to_the_default_one_saying_so(
    slack: FakeSlackApi, notifier: Notifier
) -> None:
    notifier.submit([failure(1, "#quiet"), failure(2, "#no-such-channel")])
    assert notifier.flush(patient(10))
    notes = sorted(str(m.blocks[0]) for m in slack.messages_in("alerts") if m.blocks)
    assert len(notes) == 2  # the two channels are delivered independently: any order
    assert "Meant for #no-such-channel" in notes[0]
    assert "channel_not_found" in notes[0]
    assert "Meant for #quiet" in notes[1]
    assert "not_in_channel" in notes[1]
    assert notifier.health().fallbacks_total == 2
    assert slack.messages_in("quiet") == []


def test_truncated_text_is_accepted_by_slack(slack: FakeSlackApi, notifier: Notifier) -> None:
    huge = "E" * 50_000
    notifier.submit(
        [
            Post("traceback", "b", "traceback:huge", AT, {"final_line": huge, "pod": huge}),
            Post("job_failed", "b", "job_failed:huge", AT, {"message": huge, "reason": huge}),
        ]
    )
    assert notifier.flush(patient(10))
    assert len(slack.messages) == 2
    assert all("… (truncated)" in json.dumps(m.blocks, ensure_ascii=False) for m in slack.messages)
    assert not [r for r in slack.requests if r.error]


def test_blocks_slack_refuses_are_resent_as_plain_text(
    slack: FakeSlackApi, notifier: Notifier
) -> None:
    slack.fail("chat.postMessage", "invalid_blocks")
    notifier.submit([failure(1)])
    assert notifier.flush(patient(10))
    (message,) = slack.messages
    assert message.blocks is None
    assert message.payload["key"] == failure(1).key


def test_invalid_auth_makes_the_notifier_unhealthy_and_keeps_the_outbox(
    slack: FakeSlackApi,
    notifier: Notifier,
    document: StateDocument,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    slack.token = "xoxb-rotated"
    notifier.submit([failure(1)])
    wait_until(lambda: notifier.health().status == "unhealthy", timeout=5)
    assert "invalid_auth" in notifier.health().detail
    assert any("Slack refused the bot token (invalid_auth)" in r.message for r in caplog.records)
    assert len(document.section("outbox")["pending"]) == 1
    slack.token = TOKEN
    assert notifier.flush(patient(10))
    assert keys(slack, "alerts") == [failure(1).key]
    assert notifier.health().status == "ok"


def test_dry_run_prints_one_json_line_per_alert() -> None:
    stream = io.StringIO()
    notifier = Notifier(StdoutTransport(stream), router=ROUTER)
    notifier.start()
    alert = missed()
    notifier.submit([alert, failure(1), alert, recovered(alert)])
    assert notifier.flush(patient(5))
    notifier.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    printed = [(line["kind"], line["key"]) for line in lines]
    assert sorted(printed) == sorted(
        [
            ("missed_deadline", alert.key),
            ("job_failed", failure(1).key),
            ("recovered", f"recovered:{alert.key}"),
        ]
    )
    # Channels are delivered independently; within one, in order.
    assert printed.index(("missed_deadline", alert.key)) < printed.index(
        ("recovered", f"recovered:{alert.key}")
    )
    missed_line = lines[printed.index(("missed_deadline", alert.key))]
    assert missed_line["batch"] == "recommend-daily"
    assert missed_line["text"].startswith("<!subteam^S0123> Missed deadline")


def test_the_environment_selects_slack_or_stdout(slack: FakeSlackApi) -> None:
    assert isinstance(transport_from_env({}), StdoutTransport)
    assert isinstance(transport_from_env({"SLACK_BOT_TOKEN": TOKEN}, dry_run=True), StdoutTransport)
    for url in (slack.url, slack.url.rstrip("/")):
        env = {"MY_TOKEN": TOKEN, "SLACK_API_URL": url}
        transport = transport_from_env(env, token_env="MY_TOKEN")
        assert isinstance(transport, SlackTransport)
        assert transport.check() == "sla-monitor in Fake"


@settings(max_examples=25, deadline=None)
@given(untrusted=st.text(alphabet=st.sampled_from("<>!@#&|^ aZ\n"), max_size=40) | st.text())
def test_untrusted_text_never_reaches_slack_as_a_mention(untrusted: str) -> None:
    with FakeSlackApi(token=TOKEN) as slack:
        notifier = Notifier(SlackTransport(TOKEN, slack.url), router=ROUTER)
        notifier.start()
        fields = ("namespace", "job", "reason", "message", "pod", "container", "final_line")
        details = dict.fromkeys(fields, untrusted)
        notifier.submit(
            [
                Post("job_failed", "b", "job_failed:k", AT, details),
                Post("traceback", "b", "traceback:k", AT, details),
            ]
        )
        assert notifier.flush(patient(10))
        notifier.stop()
        assert len(slack.messages) == 2
        for message in slack.messages:
            posted = json.dumps([message.text, message.blocks, message.metadata])
            cleaned = json.loads(posted.replace(json.dumps(MENTION)[1:-1], ""))
            assert "<!" not in json.dumps(cleaned)
            assert "<@" not in json.dumps(cleaned)
            assert "<#" not in json.dumps(cleaned)
