"""Alert layouts: what a person reads, Slack's limits, and escaping of untrusted text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.facts import Action, Post, Resolve
from monitor.notify.escape import TRUNCATED
from monitor.notify.examples import MENTION, examples
from monitor.notify.preview import html_preview
from monitor.notify.render import (
    RenderSettings,
    render_post,
    render_recovered,
    render_resolved,
)
from monitor.runtime.resume import KeptAside, kept_aside_report
from monitor.testing.slack_blocks import message_error

AT = datetime(2026, 11, 27, 0, 5, tzinfo=UTC)
KUBECTL = RenderSettings()
LOGGING = RenderSettings(logs_project="my-gcp-project", logs_cluster="ml-cluster")


def made(name: str, **overrides: Any) -> Action:
    """The action the engine itself made for `name` in the scripted morning."""
    return examples(**overrides)[name]


def post(name: str, **overrides: Any) -> Post:
    action = made(name, **overrides)
    assert isinstance(action, Post)
    return action


def resolve(name: str) -> Resolve:
    action = made(name)
    assert isinstance(action, Resolve)
    return action


def missed() -> Post:
    return post("missed_deadline")


def job_failed(**fields: Any) -> Post:
    """The engine's job_failed for a Job whose fields (reason, message, name…) are `fields`."""
    return post("job_failed", failure=fields)


def traceback(**fields: Any) -> Post:
    return post("traceback", traceback=fields)


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
    message = render_post(missed(), KUBECTL, MENTION)
    assert message.text == (
        f"{MENTION} Missed deadline: recommend-daily did not complete by "
        "2026-11-26 09:00 JST (+5 min grace). Latest run recommend-daily-29399 failed: "
        "BackoffLimitExceeded (at 2026-11-26 09:03 JST)."
    )
    assert message.blocks[0]["text"]["text"] == "🚨 Missed deadline: recommend-daily"
    lead = message.blocks[1]["text"]["text"]
    assert lead.startswith(MENTION + " ")
    assert "Last success: *2026-11-25 08:41 JST*" in lead
    assert "2026-11-25 09:05 JST → 2026-11-26 09:05 JST" in flat(message.blocks)
    assert message.metadata == {
        "event_type": "sla_monitor_alert",
        "event_payload": {
            "kind": "missed_deadline",
            "batch": "recommend-daily",
            "key": "recommend-daily@2026-11-26T09:00:00+09:00",
        },
    }


def test_missed_deadline_without_any_success_says_so() -> None:
    never = post("missed_deadline_never_succeeded")
    body = flat(render_post(never, KUBECTL).blocks)
    assert "none seen since the monitor started" in body
    assert "08:41" not in body  # another batch's success is not this one's


def test_stale_gives_the_bound_and_since_when() -> None:
    message = render_post(post("stale"), KUBECTL)
    assert message.text == (
        "Stale: feature-refresh has had no successful run for over 30 min "
        "(last success: 2026-11-25 23:01 UTC)."
    )
    assert "stale since *2026-11-25 23:31 UTC*" in flat(message.blocks)


def test_job_failed_shows_reason_message_and_kubectl_without_cloud_logging() -> None:
    message = render_post(job_failed(), KUBECTL, MENTION)
    assert message.text == (
        f"{MENTION} Job failed: ml-batch/recommend-daily-29399 (BackoffLimitExceeded), "
        "batch recommend-daily."
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
    url = "https://" + body.split("<https://", 1)[1].split("|", 1)[0]
    assert url.startswith("https://console.cloud.google.com/logs/query;query=")
    assert url.endswith("?project=my-gcp-project")
    query = unquote(url.split(";query=", 1)[1].split(";", 1)[0])
    assert 'resource.labels.cluster_name="ml-cluster"' in query
    assert 'labels."k8s-pod/job-name"="recommend-daily-29399"' in query
    assert ";startTime=2026-11-25T18:03:00Z;endTime=2026-11-26T00:18:00Z" in url


def test_traceback_shows_the_final_line_and_the_pod() -> None:
    message = render_post(traceback(), KUBECTL, MENTION)
    assert message.text == (
        f"{MENTION} Traceback in ml-batch/recommend-daily-29399-x7k2p: KeyError: 'user_id', "
        "batch recommend-daily."
    )
    body = flat(message.blocks)
    assert "```KeyError: 'user_id'```" in body
    assert "kubectl -n ml-batch logs recommend-daily-29399-x7k2p -c main --timestamps" in body
    assert message.metadata["event_payload"]["batch"] == "recommend-daily"
    unmatched = render_post(traceback(job="other-1", cronjob="other"), KUBECTL)
    assert unmatched.text.endswith("KeyError: 'user_id', no batch.")
    assert unmatched.metadata["event_payload"]["batch"] == ""
    query = unquote(flat(render_post(traceback(), LOGGING).blocks))
    assert 'resource.labels.pod_name="recommend-daily-29399-x7k2p"' in query


def test_monitor_degraded_names_the_source_and_config_errors() -> None:
    message = render_post(post("monitor_degraded"), KUBECTL)
    assert message.text.startswith(
        "Monitor degraded: cannot reach the Kubernetes API since 2026-11-26 00:04 UTC"
    )
    assert "```connection refused```" in flat(message.blocks)
    message = render_post(post("config_rejected"), KUBECTL)
    assert message.text == (
        "Monitor degraded: a config reload failed (1 errors); the last good config keeps running."
    )
    assert "sla.yaml:3:5: unknown key &lt;grace_period&gt;" in flat(message.blocks)
    back = render_recovered(resolve("recovered_monitor_degraded"), KUBECTL)
    assert back.text == "Recovered: the Kubernetes API was reached again at 2026-11-26 00:11 UTC."


def test_recovered_reply_says_how_late_in_the_batch_zone_and_edit_marks_the_alert_resolved() -> (
    None
):
    recovered = resolve("recovered_missed_deadline")
    reply = render_recovered(recovered, KUBECTL)
    assert reply.text == (
        "Recovered: recommend-daily completed successfully at 2026-11-26 09:47 JST, "
        "47 min late (deadline 2026-11-26 09:00 JST); 1 deadline missed."
    )
    assert reply.metadata["event_payload"] == {
        "kind": "recovered",
        "batch": "recommend-daily",
        "key": f"recovered:{missed().key}",
    }
    edit = render_resolved(missed(), recovered, KUBECTL)
    assert edit.blocks[0]["text"]["text"] == "✅ Resolved — Missed deadline: recommend-daily"
    assert "47 min late" in edit.blocks[1]["text"]["text"]
    assert MENTION not in flat(edit.blocks)  # an edit never pings again
    assert edit.metadata == render_post(missed(), KUBECTL).metadata


def test_the_committed_message_previews_are_current() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "messages.html").read_text()
    assert page == html_preview(LOGGING), "run: python -m monitor.notify.preview docs/messages.html"


def test_every_kind_renders_with_no_details_at_all() -> None:
    for kind in ("missed_deadline", "stale", "job_failed", "traceback", "monitor_degraded"):
        message = render_post(Post(kind, "b", f"{kind}:k", AT, {}), KUBECTL)  # type: ignore[arg-type]
        assert message_error(message.as_json()) is None, kind
        assert message.text


def test_oversized_untrusted_text_is_cut_visibly_within_slack_limits() -> None:
    huge = "x" * 100_000 + "&"
    for post in (
        job_failed(message=huge, reason=huge, name=huge),
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


UNTRUSTED_JOB_FIELDS = ("namespace", "name", "uid", "reason", "message", "cronjob")
UNTRUSTED_LOG_FIELDS = ("namespace", "pod", "container", "job", "cronjob", "first_line")


def _leaks(message: dict[str, Any]) -> list[str]:
    found = []
    for text in texts(message):
        cleaned = text.replace(MENTION, "")
        found += [marker for marker in ("<!", "<@", "<#") if marker in cleaned]
    return found


@settings(max_examples=150, deadline=None)
@given(untrusted=UNTRUSTED)
def test_untrusted_text_can_never_ping_anyone(untrusted: str) -> None:
    """Hostile text in every field a Job, a log line, an API error or a bad config can carry,
    through the real engine into every message it makes."""
    made = examples(
        failure=dict.fromkeys(UNTRUSTED_JOB_FIELDS, untrusted),
        traceback={**dict.fromkeys(UNTRUSTED_LOG_FIELDS, untrusted), "final_line": untrusted},
        outage=untrusted,
        config_errors=(untrusted, untrusted),
    )
    assert {"job_failed", "traceback", "monitor_degraded", "config_rejected"} <= set(made)
    alerts = {action.key: action for action in made.values() if isinstance(action, Post)}
    for rendering in (KUBECTL, LOGGING):
        messages = [render_post(alert, rendering) for alert in alerts.values()]
        for action in made.values():
            if isinstance(action, Resolve):
                messages.append(render_recovered(action, rendering))
                messages.append(render_resolved(alerts[action.key], action, rendering))
        for message in messages:
            document = message.as_json()
            assert _leaks(document) == [], json.dumps(document)[:2000]
            assert message_error(document) is None


def test_a_stalled_watch_says_the_api_answers_but_the_view_does_not_move() -> None:
    from monitor.core.engine import Engine
    from monitor.core.facts import KUBERNETES, SourceHealth, Tick, Watermark
    from monitor.notify.examples import STARTED, scripted_config

    engine = Engine(scripted_config(), started_at=STARTED)
    engine.handle(SourceHealth(KUBERNETES, True, STARTED))
    engine.handle(Watermark(KUBERNETES, STARTED))
    made = [a for minute in range(1, 8) for a in engine.handle(Tick(STARTED + minute * MINUTE))]
    [stall] = [a for a in made if isinstance(a, Post) and a.kind == "monitor_degraded"]
    message = render_post(stall, KUBECTL)
    assert message.text.startswith("Monitor degraded: the Kubernetes Job watch has not moved")
    assert "cannot reach" not in message.text
    [back] = engine.handle(Watermark(KUBERNETES, STARTED + 7 * MINUTE))
    assert isinstance(back, Resolve)
    assert "caught up again" in render_recovered(back, KUBECTL).text


MINUTE = timedelta(minutes=1)


def test_at_risk_and_overrun_say_why_in_the_batch_zone_and_how_they_ended() -> None:
    from monitor.notify.render import render_recovered, render_resolved

    made = examples()
    settings = RenderSettings()
    risk = render_post(made["at_risk"], settings)
    assert risk.text == (
        "At risk: train-embeddings will probably miss its 2026-11-26 09:00 JST deadline."
    )
    lead = json.dumps(risk.blocks)
    assert "has already run longer than the usual *35 min*" in lead
    assert "train-embeddings-29399" in lead
    closed = render_resolved(made["at_risk"], made["closed_at_risk"], settings)
    assert closed.text.startswith("[Closed] At risk")
    assert "superseded by the missed deadline" in json.dumps(closed.blocks)
    overrun = render_post(made["overrun"], settings)
    assert overrun.text == (
        "Overrun: Job ml-batch/train-embeddings-29399 has run longer than 1 h, "
        "batch train-embeddings."
    )
    assert made["overrun"].thread == "run:ml-batch/train-embeddings-29399"
    ended = render_recovered(made["recovered_overrun"], settings)
    assert ended.text == (
        "Recovered: the run ended (succeeded) after 1 h 48 min at 2026-11-26 09:50 JST."
    )


def test_the_report_of_a_state_kept_aside_says_where_and_escapes_the_reason() -> None:
    kept = KeptAside("state ConfigMap ops/sla", "not JSON: <!channel> & co", "ConfigMap ops/x")
    message = render_post(kept_aside_report([kept], AT), KUBECTL)
    assert message_error(message.as_json()) is None
    everything = json.dumps(message.blocks) + message.text
    assert "saved state unusable" in everything
    assert "kept aside as ConfigMap ops/x" in everything
    assert "<!channel>" not in everything
    assert "&lt;!channel&gt; &amp; co" in everything
