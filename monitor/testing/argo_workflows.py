"""Argo Workflow lifecycles the way the workflow controller writes them.

A submitted Workflow from a CronWorkflow carries the `workflows.argoproj.io/cron-workflow`
label and an owner reference to it; one from a WorkflowTemplate has
`spec.workflowTemplateRef`. The controller moves `status.phase` through Pending, Running
and a final Succeeded / Failed / Error, stamping `startedAt` and `finishedAt` (whole
seconds, RFC 3339) and mirroring the phase in the `workflows.argoproj.io/phase` label.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from monitor.testing.kube_store import RESOURCES_BY_NAME, JsonObject, KubeStore, rfc3339

WORKFLOWS = RESOURCES_BY_NAME[("argoproj.io", "workflows")]
CRON_WORKFLOW_LABEL = "workflows.argoproj.io/cron-workflow"
PHASE_LABEL = "workflows.argoproj.io/phase"
COMPLETED_LABEL = "workflows.argoproj.io/completed"


def workflow_object(
    namespace: str,
    name: str,
    *,
    cron_workflow: str | None = None,
    template: str | None = None,
    started_at: datetime | None = None,
) -> JsonObject:
    labels = {PHASE_LABEL: "Running", COMPLETED_LABEL: "false"}
    meta: JsonObject = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}
    if cron_workflow is not None:
        labels[CRON_WORKFLOW_LABEL] = cron_workflow
        meta["ownerReferences"] = [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "CronWorkflow",
                "name": cron_workflow,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{namespace}/{cron_workflow}")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    meta["labels"] = labels
    spec: JsonObject = {"arguments": {}, "entrypoint": "main"}
    if template is not None:
        spec = {"arguments": {}, "workflowTemplateRef": {"name": template}}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": "Running",
            "startedAt": rfc3339(started_at or datetime.now(UTC)),
            "finishedAt": None,
            "progress": "0/1",
        },
    }


class WorkflowController:
    """The hooks tests call: submit, finish and delete Workflows."""

    def __init__(self, store: KubeStore) -> None:
        self.store = store

    def submit(
        self,
        namespace: str,
        name: str,
        *,
        cron_workflow: str | None = None,
        template: str | None = None,
        started_at: datetime | None = None,
    ) -> JsonObject:
        """Create a Running Workflow."""
        workflow = workflow_object(
            namespace, name, cron_workflow=cron_workflow, template=template, started_at=started_at
        )
        return self.store.create(WORKFLOWS, namespace, workflow).obj

    def finish(
        self,
        namespace: str,
        name: str,
        phase: str = "Succeeded",
        *,
        at: datetime | None = None,
        message: str | None = None,
    ) -> None:
        """Move the Workflow to a final phase (Succeeded, Failed or Error) at `at`."""
        moment = at or datetime.now(UTC)

        def change(workflow: JsonObject) -> None:
            status = workflow.setdefault("status", {})
            status.update({"phase": phase, "finishedAt": rfc3339(moment), "progress": "1/1"})
            if message is not None:
                status["message"] = message
            labels = workflow["metadata"].setdefault("labels", {})
            labels.update({PHASE_LABEL: phase, COMPLETED_LABEL: "true"})

        self.store.modify(WORKFLOWS, namespace, name, change)

    def delete(self, namespace: str, name: str) -> None:
        self.store.delete(WORKFLOWS, namespace, name)
