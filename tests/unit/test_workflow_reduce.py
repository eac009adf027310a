"""Argo Workflow objects -> runs: phases, times, families, and what is malformed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.sources.argo.workflows import WORKFLOWS
from monitor.sources.kube.reduce import MalformedRun

reduce = WORKFLOWS.codec.reduce_mapping


def workflow(phase: str | None, **extra: Any) -> dict[str, Any]:
    meta = {"name": "train-1", "namespace": "ml", "uid": "w1", **extra.pop("meta", {})}
    status: dict[str, Any] = {"startedAt": "2026-11-27T08:00:00Z", **extra.pop("status", {})}
    if phase is not None:
        status["phase"] = phase
    return {"metadata": meta, "spec": extra.pop("spec", {}), "status": status}


def test_a_succeeded_workflow_completes_at_finished_at() -> None:
    run = reduce(workflow("Succeeded", status={"finishedAt": "2026-11-27T08:30:00Z"}))
    assert (run.kind, run.outcome) == ("Workflow", "succeeded")
    assert run.completion_time == datetime(2026, 11, 27, 8, 30, tzinfo=UTC)
    assert run.start_time == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_failed_and_error_phases_fail_with_the_phase_as_reason(phase: str) -> None:
    status = {"finishedAt": "2026-11-27T08:10:00Z", "message": "child 'main' failed"}
    run = reduce(workflow(phase, status=status))
    assert (run.outcome, run.reason, run.message) == ("failed", phase, "child 'main' failed")
    assert run.failed_at == datetime(2026, 11, 27, 8, 10, tzinfo=UTC)
    assert run.completion_time is None


@pytest.mark.parametrize("phase", [None, "Pending", "Running"])
def test_other_phases_are_running(phase: str | None) -> None:
    assert reduce(workflow(phase)).outcome == "running"


def test_families_come_from_the_cron_workflow_and_the_template() -> None:
    labels = {"workflows.argoproj.io/cron-workflow": "nightly"}
    spec = {"workflowTemplateRef": {"name": "train-template"}}
    run = reduce(workflow("Running", meta={"labels": labels}, spec=spec))
    assert run.workflows == ("nightly", "train-template")
    owner = {"kind": "CronWorkflow", "name": "owned", "controller": True}
    templated = {"labels": {"workflows.argoproj.io/workflow-template": "by-label"},
                 "ownerReferences": [owner]}  # fmt: skip
    assert reduce(workflow(None, meta=templated)).workflows == ("owned", "by-label")
    assert reduce(workflow(None)).workflows == ()


@pytest.mark.parametrize(
    "broken",
    [
        workflow("Succeeded"),  # no finishedAt: no completion instant
        workflow("Running", status={"startedAt": "yesterday"}),
        workflow("Running", status={"startedAt": "2300-01-01T00:00:00Z"}),  # out of range
        workflow("Running", meta={"uid": ""}),
        {"metadata": "not a mapping"},
    ],
)
def test_malformed_workflows_are_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(MalformedRun):
        reduce(broken)
