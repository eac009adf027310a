"""Least privilege, proven: the daemon runs against a fake API server that enforces exactly
the RBAC rules deploy/ renders, every request is allowed, and every granted rule is used.

Each overlay runs with the settings its own SLA config ships (watched namespaces, pod logs,
Argo, Cloud Logging), so a Role granted in a watched namespace must be used there, and an
overlay that lists namespaces must get by with no cluster-wide grant at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.load import load_config
from monitor.testing.logging_api import container_entry
from monitor.testing.stack import LocalStack, cron_at
from monitor.testing.wait import wait_until
from tests.deploy.manifests import OVERLAYS, RENDERED, find
from tests.e2e.helpers import freshness_batch, reconfigure_ahead

NAMESPACE = "sla-monitor"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/train.py", line 3, in <module>\n'
    "    main()\n"
    "KeyError: 'user_id'\n"
)


Grant = tuple[str, str, str, str, str]


def granted(rendered: str) -> set[Grant]:
    """(namespace or "*" for a ClusterRole, verb, apiGroup, resource, resourceName or "*")
    for every grant of every role."""
    grants = set()
    for document in yaml.safe_load_all(rendered):
        if not document or document["kind"] not in ("Role", "ClusterRole"):
            continue
        scope = document["metadata"]["namespace"] if document["kind"] == "Role" else "*"
        for rule in document["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames", ["*"]):
                            grants.add((scope, verb, group, resource, name))
    return grants


def used(grant: Grant, requests: list[Any]) -> bool:
    scope, verb, group, resource, name = grant
    return any(
        scope in ("*", r.namespace)
        and r.verb == verb
        and r.api_group == group
        and r.resource_path == resource
        and name in ("*", r.name)
        for r in requests
    )


def shipped_settings(overlay: str, tmp_path: Path) -> dict[str, Any]:
    """The overlay's own kubernetes/argo/cloud_logging choices, as test config."""
    (tmp_path / "shipped.yaml").write_text(find(overlay, "ConfigMap")["data"]["sla.yaml"])
    shipped = load_config(tmp_path / "shipped.yaml")
    settings: dict[str, Any] = {
        "kubernetes": {
            "namespaces": list(shipped.kubernetes.namespaces),
            "pod_logs": shipped.kubernetes.pod_logs,
        },
        "argo": {"enabled": shipped.argo.enabled},
        "state": {"configmap": f"{NAMESPACE}/sla-monitor-state"},
    }
    if shipped.cloud_logging is not None:
        settings["cloud_logging"] = {
            "project": "test-project",
            "cluster": "test-cluster",
            "poll_interval": "1s",
        }
    return settings


def kinds(stack: LocalStack) -> list[str]:
    return sorted(message.payload.get("kind", "") for message in stack.slack.messages)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_rbac_is_sufficient_and_minimal(overlay: str, tmp_path: Path) -> None:
    rendered = (RENDERED / f"{overlay}.yaml").read_text()
    settings = shipped_settings(overlay, tmp_path)
    from_cloud_logging = "cloud_logging" in settings  # else tracebacks come from pod logs
    watched = settings["kubernetes"]["namespaces"]
    assert not watched or "ml-batch" in watched, "the run below is in ml-batch"
    if watched:  # every read of a watched workload is granted per namespace
        assert all(scope != "*" for scope, *_ in granted(rendered))
    with LocalStack(tmp_path, rbac_yaml=[rendered], cloud_logging=from_cloud_logging) as stack:
        config = {**settings, "batches": [freshness_batch("placeholder", "1d")]}
        path = stack.write_config(config)
        env = stack.env(POD_NAMESPACE=NAMESPACE, POD_NAME="replica-a")
        daemon = stack.spawn(path, "--leader-elect", env=env)
        daemon.wait_ready()
        wait_until(lambda: daemon.status()["leader"] is True, timeout=20)
        # The deadline is set once the leader runs (a reload is judged like a first start),
        # so a slow start-up on a loaded machine cannot swallow it.
        reconfigure_ahead(
            stack,
            daemon,
            settings,
            4,
            lambda at: [
                {
                    "name": "nightly",
                    "match": {"namespace": "ml-batch", "cronjob": "nightly"},
                    "deadline": cron_at(at),
                }
            ],
        )

        stack.kube.jobs.create_job("ml-batch", "nightly-1", cronjob="nightly")
        [pod] = stack.kube.jobs.pods_of("ml-batch", "nightly-1")
        pod_name = pod["metadata"]["name"]
        if not from_cloud_logging:
            stack.kube.jobs.set_pod_log("ml-batch", pod_name, "main", TRACEBACK)
        else:
            assert stack.logging is not None
            now = datetime.now(UTC)
            stack.logging.add(
                container_entry(
                    namespace="ml-batch",
                    pod=pod_name,
                    job="nightly-1",
                    job_uid=pod["metadata"]["labels"]["controller-uid"],
                    text=TRACEBACK.rstrip("\n"),
                    timestamp=now,
                    json_message=True,
                )
            )
        stack.kube.jobs.fail_job("ml-batch", "nightly-1")

        wait_until(
            lambda: {"job_failed", "traceback", "missed_deadline"} <= set(kinds(stack)),
            timeout=45,
        )
        assert daemon.terminate() == 0

        requests = list(stack.kube.requests)
        assert stack.kube.denied == [], f"denied: {stack.kube.denied}\n{daemon.logs()[-3000:]}"
        grants = granted(rendered)
        unused = sorted(grant for grant in grants if not used(grant, requests))
        observed = sorted(
            {(r.namespace or "*", r.verb, r.api_group, r.resource_path, r.name) for r in requests}
        )
        print("granted:", *sorted(grants), sep="\n  ")
        print("observed:", *observed, sep="\n  ")
        assert unused == [], f"granted but never used: {unused}"
