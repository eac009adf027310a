"""Least privilege, proven: the daemon runs against a fake API server that enforces exactly
the RBAC rules deploy/ renders, every request is allowed, and every granted rule is used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.testing.logging_api import container_entry
from monitor.testing.stack import LocalStack, cron_at
from monitor.testing.wait import wait_until
from tests.deploy.manifests import RENDERED
from tests.e2e.helpers import freshness_batch, reconfigure_ahead

NAMESPACE = "sla-monitor"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/train.py", line 3, in <module>\n'
    "    main()\n"
    "KeyError: 'user_id'\n"
)


def granted(rendered: str) -> set[tuple[str, str, str, str]]:
    """(verb, apiGroup, resource, resourceName or "*") for every grant of every role."""
    grants = set()
    for document in yaml.safe_load_all(rendered):
        if not document or document["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in document["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames", ["*"]):
                            grants.add((verb, group, resource, name))
    return grants


def used(grant: tuple[str, str, str, str], requests: list[Any]) -> bool:
    verb, group, resource, name = grant
    return any(
        r.verb == verb
        and r.api_group == group
        and r.resource_path == resource
        and name in ("*", r.name)
        for r in requests
    )


def kinds(stack: LocalStack) -> list[str]:
    return sorted(message.payload.get("kind", "") for message in stack.slack.messages)


@pytest.mark.parametrize("overlay", ["generic", "gke"])
def test_rendered_rbac_is_sufficient_and_minimal(overlay: str, tmp_path: Path) -> None:
    rendered = (RENDERED / f"{overlay}.yaml").read_text()
    pod_logs = overlay == "generic"
    argo = overlay == "gke"  # the overlay that grants Workflows must use them
    with LocalStack(tmp_path, rbac_yaml=[rendered], cloud_logging=not pod_logs) as stack:
        config: dict[str, Any] = {
            "kubernetes": {"namespaces": ["ml-batch"], "pod_logs": pod_logs},
            "argo": {"enabled": argo},
            "state": {"configmap": f"{NAMESPACE}/sla-monitor-state"},
            "batches": [freshness_batch("placeholder", "1d")],
        }
        if not pod_logs:
            config["cloud_logging"] = {
                "project": "test-project",
                "cluster": "test-cluster",
                "poll_interval": "1s",
            }
        path = stack.write_config(config)
        env = stack.env(POD_NAMESPACE=NAMESPACE, POD_NAME="replica-a")
        daemon = stack.spawn(path, "--leader-elect", env=env)
        daemon.wait_ready()
        wait_until(lambda: daemon.status()["leader"] is True, timeout=20)
        # The deadline is set once the leader runs (a reload is judged like a first start),
        # so a slow start-up on a loaded machine cannot swallow it.
        settings = {key: value for key, value in config.items() if key != "batches"}
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
        if pod_logs:
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
        observed = sorted({(r.verb, r.api_group, r.resource_path, r.name) for r in requests})
        print("granted:", *sorted(grants), sep="\n  ")
        print("observed:", *observed, sep="\n  ")
        assert unused == [], f"granted but never used: {unused}"
