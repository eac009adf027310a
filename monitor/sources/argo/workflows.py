"""Argo Workflows (argoproj.io/v1alpha1) as runs: projection, reduction, the watched resource.

A Workflow is one run. Its outcome is its phase: `Succeeded` completes at
`status.finishedAt`; `Failed` and `Error` fail at `status.finishedAt` with the phase as
the reason and `status.message` as the message; `Pending`, `Running` or no phase yet is
running. `status.startedAt` is its start.

Its families — what `match.workflow` names — are the CronWorkflow that created it (the
`workflows.argoproj.io/cron-workflow` label, else an owner reference of kind
CronWorkflow) and the WorkflowTemplate it runs (`spec.workflowTemplateRef.name`, else the
`workflows.argoproj.io/workflow-template` or `…/cluster-workflow-template` label).

The reflector, watermark and relist semantics are the Jobs' own (`sources.kube`); only
this decoding differs.
"""

from __future__ import annotations

from typing import Any

import msgspec

from monitor.core.facts import JobOutcome, JobSeen
from monitor.sources.kube.decode import ListMetadata, ObjectMetadata
from monitor.sources.kube.reduce import (
    MalformedRun,
    identity,
    owner_named,
    parse_time,
    settle_job,
    shared_labels,
    text_field,
)
from monitor.sources.kube.resources import WatchedResource, codec_of

CRON_WORKFLOW_LABEL = "workflows.argoproj.io/cron-workflow"
TEMPLATE_LABELS = (
    "workflows.argoproj.io/workflow-template",
    "workflows.argoproj.io/cluster-workflow-template",
)
FAILED_PHASES = ("Failed", "Error")


class TemplateRef(msgspec.Struct, gc=False):
    name: Any = None


class WorkflowSpec(msgspec.Struct, rename="camel", gc=False):
    workflow_template_ref: TemplateRef | None = None


class WorkflowStatus(msgspec.Struct, rename="camel", gc=False):
    phase: Any = None
    started_at: Any = None
    finished_at: Any = None
    message: Any = None


class WorkflowDocument(msgspec.Struct, gc=False):
    """An argoproj.io/v1alpha1 Workflow, projected."""

    metadata: ObjectMetadata | None = None
    spec: WorkflowSpec | None = None
    status: WorkflowStatus | None = None


class WorkflowPage(msgspec.Struct, gc=False):
    metadata: ListMetadata | None = None
    items: list[WorkflowDocument] | None = None


class WorkflowEvent(msgspec.Struct, gc=False):
    type: str
    object: WorkflowDocument


def reduce_workflow(workflow: WorkflowDocument) -> JobSeen:
    """The `JobSeen` (kind "Workflow") of one projected Workflow."""
    meta = workflow.metadata or ObjectMetadata()
    status = workflow.status or WorkflowStatus()
    uid, namespace, name = identity(meta)
    phase = text_field(status.phase, "status.phase")
    finished_at = parse_time(status.finished_at, "status.finishedAt")
    outcome: JobOutcome = "running"
    if phase == "Succeeded":
        if finished_at is None:
            raise MalformedRun("status.phase is Succeeded without status.finishedAt")
        outcome = "succeeded"
    elif phase in FAILED_PHASES:
        outcome = "failed"
    labels = shared_labels(meta.labels, uid, name)
    return JobSeen(
        uid=uid,
        namespace=namespace,
        name=name,
        labels=labels,
        start_time=parse_time(status.started_at, "status.startedAt"),
        completion_time=finished_at if outcome == "succeeded" else None,
        outcome=outcome,
        reason=phase if outcome == "failed" else None,
        message=text_field(status.message, "status.message") if outcome == "failed" else None,
        failed_at=finished_at if outcome == "failed" else None,
        created_at=parse_time(meta.creation_timestamp, "metadata.creationTimestamp"),
        kind="Workflow",
        workflows=_families(meta, workflow.spec, labels),
    )


def _families(
    meta: ObjectMetadata, spec: WorkflowSpec | None, labels: dict[str, str]
) -> tuple[str, ...]:
    cron = labels.get(CRON_WORKFLOW_LABEL) or owner_named(meta.owner_references, "CronWorkflow")
    ref = spec.workflow_template_ref if spec is not None else None
    template = text_field(ref.name, "spec.workflowTemplateRef.name") if ref is not None else None
    template = template or next((labels[key] for key in TEMPLATE_LABELS if key in labels), None)
    return tuple(dict.fromkeys(name for name in (cron, template) if name))


WORKFLOWS: WatchedResource[JobSeen] = WatchedResource(
    noun="Workflow",
    group="argoproj.io",
    version="v1alpha1",
    plural="workflows",
    codec=codec_of(
        WorkflowDocument, WorkflowPage, WorkflowEvent, reduce_workflow, settle=settle_job
    ),
)
