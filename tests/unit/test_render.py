"""Alert layouts: what a person reads, Slack's limits, and escaping of untrusted text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.facts import Post, Resolve
from monitor.notify.escape import TRUNCATED
from monitor.notify.render import (
    RenderSettings,
    render_post,
    render_recovered,
    render_resolved,
)
from monitor.testing.slack_blocks import message_error

AT = datetime(2026, 11, 27, 0, 5, tzinfo=UTC)
MENTION = "<!subteam^S0123>"
KUBECTL = RenderSettings()
LOGGING = RenderSettings(logs_project="my-gcp-project", logs_cluster="ml-cluster")


def missed() -> Post:
    return Post(
        kind="missed_deadline",
        batch="recommend-daily",
        key="recommend-daily@2026-11-27T09:00:00+09:00",
        at=AT,
        details={
            "deadline": "2026-11-27T09:00:00+09:00",
            "window_start": "2026-11-26T09:05:00+09:00",
            "window_end": "2026-11-27T09:05:00+09:00",
            "grace_seconds": 300,
            "timezone": "Asia/Tokyo",
            "last_success": "2026-11-26T08:41:12+09:00",
        },
        channel="#recommend",
        mention=MENTION,
    )


def job_failed(**details: Any) -> Post:
    base = {
        "namespace": "ml-batch",
        "job": "recommend-daily-29399",
        "uid": "0d4f-uid",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
        "cronjob": "recommend-daily",
        "failed_at": "2026-11-27T00:03:00+00:00",
    }
    return Post("job_failed", "recommend-daily", "job_failed:ml-batch/j@u", AT, {**base, **details})


def traceback(**details: Any) -> Post:
    base = {
        "namespace": "ml-batch",
        "pod": "recommend-daily-29399-x7k2p",
        "container": "main",
        "job": "recommend-daily-29399",
        "first_line": "Traceback (most recent call last):",
        "final_line": "KeyError: 'user_id'",
        "time": "2026-11-27T00:02:30+00:00",
    }
    return Post("traceback", "", "traceback:ml-batch/p/main@t", AT, {**base, **details})


def texts(value: Any) -> Iterator[str]:
    """Every string anywhere in a JSON-able value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)


def flat(value: Any) -> str:
    return "\n".join(texts(value))


def test_missed_deadline_says_which_batch_which_deadline_and_last_success() -> None:
    message = render_post(missed(), KUBECTL)
    assert message.text == (
        f"{MENTION} Missed deadline: recommend-daily did not complete by "
        "2026-11-27 09:00 JST (+5 min grace)."
    )
    assert message.blocks[0]["text"]["text"] == "🚨 Missed deadline: recommend-daily"
    lead = message.blocks[1]["text"]["text"]
    assert lead.startswith(MENTION + " ")
    assert "2026-11-26 08:41:12 JST" in lead
    assert "2026-11-26 09:05 JST → 2026-11-27 09:05 JST" in flat(message.blocks)
    assert message.metadata == {
        "event_type": "sla_monitor_alert",
        "event_payload": {
            "kind": "missed_deadline",
            "batch": "recommend-daily",
            "key": "recommend-daily@2026-11-27T09:00:00+09:00",
        },
    }


def test_missed_deadline_without_any_success_says_so() -> None:
    post = missed()
    post = Post(post.kind, post.batch, post.key, AT, {**post.details, "last_success": None})
    assert "none seen since the monitor started" in flat(render_post(post, KUBECTL).blocks)


def test_stale_gives_the_bound_and_since_when() -> None:
    post = Post(
        "stale",
        "feature-refresh",
        "stale:feature-refresh@2026-11-27T00:31:00+00:00",
        AT,
        {
            "last_success": "2026-11-27T00:01:00+00:00",
            "freshness_seconds": 1800,
            "stale_since": "2026-11-27T00:31:00+00:00",
        },
    )
    message = render_post(post, KUBECTL)
    assert message.text == (
        "Stale: feature-refresh has had no successful run for over 30 min "
        "(last success: 2026-11-27 00:01 UTC)."
    )
    assert "stale since *2026-11-27 00:31 UTC*" in flat(message.blocks)


def test_job_failed_shows_reason_message_and_kubectl_without_cloud_logging() -> None:
    message = render_post(job_failed(), KUBECTL)
    assert message.text == (
        "Job failed: ml-batch/recommend-daily-29399 (BackoffLimitExceeded), batch recommend-daily."
    )
    body = flat(message.blocks)
    assert "```Job has reached the specified backoff limit```" in body
    assert "CronJob `recommend-daily`" in body
    assert "kubectl -n ml-batch describe job recommend-daily-29399" in body
    assert "kubectl -n ml-batch logs job/recommend-daily-29399 --all-containers" in body
    assert "console.cloud.google.com" not in body


def test_job_failed_links_to_logs_explorer_when_cloud_logging_is_configured() -> None:
    body = flat(render_post(job_failed(), LOGGING).blocks)
    assert "kubectl" not in body
    url = body.split("<", 1)[1].split("|", 1)[0]
    assert url.startswith("https://console.cloud.google.com/logs/query;query=")
    assert url.endswith("?project=my-gcp-project")
    query = unquote(url.split(";query=", 1)[1].split(";", 1)[0])
    assert 'resource.labels.cluster_name="ml-cluster"' in query
    assert 'labels."k8s-pod/job-name"="recommend-daily-29399"' in query
    assert ";startTime=2026-11-26T18:03:00Z;endTime=2026-11-27T00:18:00Z" in url


def test_traceback_shows_the_final_line_and_the_pod() -> None:
    message = render_post(traceback(), KUBECTL)
    assert message.text == (
        "Traceback in ml-batch/recommend-daily-29399-x7k2p: KeyError: 'user_id', no batch."
    )
    body = flat(message.blocks)
    assert "```KeyError: 'user_id'```" in body
    assert "kubectl -n ml-batch logs recommend-daily-29399-x7k2p -c main --timestamps" in body
    assert message.metadata["event_payload"]["batch"] == ""
    query = unquote(flat(render_post(traceback(), LOGGING).blocks))
    assert 'resource.labels.pod_name="recommend-daily-29399-x7k2p"' in query


def test_monitor_degraded_names_the_source_and_config_errors() -> None:
    down = Post(
        "monitor_degraded",
        "",
        "degraded:kubernetes@2026-11-27T00:00:00+00:00",
        AT,
        {"source": "kubernetes", "since": "2026-11-27T00:00:00+00:00", "detail": "refused"},
    )
    message = render_post(down, KUBECTL)
    assert message.text.startswith(
        "Monitor degraded: cannot reach the Kubernetes API since 2026-11-27 00:00 UTC"
    )
    assert "```refused```" in flat(message.blocks)
    bad = Post(
        "monitor_degraded",
        "",
        "degraded:config@x",
        AT,
        {"source": "config", "since": AT.isoformat(), "errors": ["a.yaml:3:5: bad <value>"]},
    )
    message = render_post(bad, KUBECTL)
    assert message.text == (
        "Monitor degraded: a config reload failed (1 errors); the last good config keeps running."
    )
    assert "a.yaml:3:5: bad &lt;value&gt;" in flat(message.blocks)


def test_recovered_reply_says_how_late_and_edit_marks_the_alert_resolved() -> None:
    resolve = Resolve(
        key=missed().key,
        kind="missed_deadline",
        batch="recommend-daily",
        at=AT + timedelta(minutes=47),
        details={
            "deadline": "2026-11-27T09:00:00+09:00",
            "completed_at": "2026-11-27T09:47:00+09:00",
            "late_seconds": 2820,
            "job": "recommend-daily-29400",
            "namespace": "ml-batch",
        },
    )
    reply = render_recovered(resolve, KUBECTL)
    assert reply.text == (
        "Recovered: recommend-daily completed successfully at 2026-11-27 09:47 UTC+09:00, "
        "47 min late (deadline 2026-11-27 09:00 UTC+09:00) — Job `ml-batch/recommend-daily-29400`."
    )
    assert reply.metadata["event_payload"] == {
        "kind": "recovered",
        "batch": "recommend-daily",
        "key": f"recovered:{missed().key}",
    }
    edit = render_resolved(missed(), resolve, KUBECTL)
    assert edit.blocks[0]["text"]["text"] == "✅ Resolved — Missed deadline: recommend-daily"
    assert "47 min late" in edit.blocks[1]["text"]["text"]
    assert edit.metadata == render_post(missed(), KUBECTL).metadata


def test_every_kind_renders_with_no_details_at_all() -> None:
    for kind in ("missed_deadline", "stale", "job_failed", "traceback", "monitor_degraded"):
        message = render_post(Post(kind, "b", f"{kind}:k", AT, {}), KUBECTL)  # type: ignore[arg-type]
        assert message_error(message.as_json()) is None, kind
        assert message.text


def test_oversized_untrusted_text_is_cut_visibly_within_slack_limits() -> None:
    huge = "x" * 100_000 + "&"
    for post in (
        job_failed(message=huge, reason=huge, job=huge),
        traceback(final_line=huge, pod=huge),
    ):
        message = render_post(post, LOGGING)
        assert message_error(message.as_json()) is None
        body = flat(message.blocks)
        assert TRUNCATED in body
        code = next(b for b in message.blocks if b["type"] == "section" and "```" in str(b))
        assert code["text"]["text"].endswith(TRUNCATED + "\n```")
        assert len(message.text) <= 40_000


def test_a_cut_never_leaves_half_an_entity() -> None:
    for size in range(2990, 3000):
        text = render_post(job_failed(message="a" * size + "<" * 50), KUBECTL).blocks[2]
        section = text["text"]["text"]
        assert TRUNCATED in section
        assert re.findall(r"&(?!amp;|lt;|gt;)", section) == [], section[-40:]


UNTRUSTED = st.text(alphabet=st.sampled_from("<>!@#&|^`*_ aZ\n:"), max_size=60) | st.text(
    max_size=30
)


UNTRUSTED_FIELDS = (
    *("namespace", "job", "uid", "reason", "message", "cronjob", "pod", "container"),
    *("first_line", "final_line", "source", "detail", "since", "time", "failed_at"),
)


def _leaks(message: dict[str, Any]) -> list[str]:
    found = []
    for text in texts(message):
        cleaned = text.replace(MENTION, "")
        found += [marker for marker in ("<!", "<@", "<#") if marker in cleaned]
    return found


@settings(max_examples=300, deadline=None)
@given(untrusted=UNTRUSTED, kind=st.sampled_from(["job_failed", "traceback", "monitor_degraded"]))
def test_untrusted_text_can_never_ping_anyone(untrusted: str, kind: str) -> None:
    details: dict[str, Any] = dict.fromkeys(UNTRUSTED_FIELDS, untrusted)
    details["errors"] = [untrusted, untrusted]
    post = Post(kind, "batch", f"{kind}:{untrusted}", AT, details, "#c", MENTION)  # type: ignore[arg-type]
    resolve = Resolve(post.key, "monitor_degraded", "batch", AT, details)
    for rendering in (KUBECTL, LOGGING):
        for message in (
            render_post(post, rendering),
            render_recovered(resolve, rendering),
            render_resolved(post, resolve, rendering),
        ):
            document = message.as_json()
            assert _leaks(document) == [], json.dumps(document)[:2000]
            assert message_error(document) is None
