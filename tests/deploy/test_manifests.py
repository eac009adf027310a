"""The deploy/ overlays render, validate against Kubernetes' schemas and pass policy."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from monitor.config.load import load_config
from monitor.config.model import Config
from tests.deploy.manifests import (
    DEPLOY,
    OVERLAYS,
    RENDERED,
    documents,
    find,
    home_namespace,
    render,
    renderer,
)

KUBERNETES_VERSION = "1.33.0"
#: Custom resources the schemas do not cover; checked structurally instead.
CUSTOM_KINDS = {"PrometheusRule"}
#: What the monitor reads in the watched namespaces, by (apiGroup, resource).
WORKLOADS = {("batch", "jobs"), ("", "pods"), ("", "pods/log"), ("argoproj.io", "workflows")}
ROLES = ("Role", "ClusterRole")
BINDINGS = ("RoleBinding", "ClusterRoleBinding")


def shipped_config(overlay: str, tmp_path: Path) -> Config:
    """The SLA config the overlay's ConfigMap carries, loaded as the daemon loads it."""
    (tmp_path / "sla.yaml").write_text(find(overlay, "ConfigMap")["data"]["sla.yaml"])
    return load_config(tmp_path / "sla.yaml")


def granted_resources(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (group, resource)
        for rule in document["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_there_are_the_overlays_the_guide_names() -> None:
    assert OVERLAYS == ["all-namespaces", "generic", "gke"]


@pytest.mark.skipif(renderer() is None, reason="neither kubectl nor kustomize is installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_committed_render_is_current(overlay: str) -> None:
    assert render(overlay) == (RENDERED / f"{overlay}.yaml").read_text(), (
        f"deploy/rendered/{overlay}.yaml is stale: "
        f"kubectl kustomize deploy/overlays/{overlay} > deploy/rendered/{overlay}.yaml"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(overlay: str) -> None:
    for document in documents(overlay):
        if document["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_shipped_sla_config_is_valid(overlay: str, tmp_path: Path) -> None:
    config_map = find(overlay, "ConfigMap")
    (tmp_path / "sla.yaml").write_text(config_map["data"]["sla.yaml"])
    config = load_config(tmp_path / "sla.yaml")
    namespace = home_namespace(overlay)
    assert config.state.configmap == f"{namespace}/sla-monitor-state"
    role = find(overlay, "Role", "sla-monitor", namespace)
    names = {name for rule in role["rules"] for name in rule.get("resourceNames", [])}
    assert "sla-monitor-state" in names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_is_restricted_highly_available_and_probed(overlay: str) -> None:
    deployment = find(overlay, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    context = container["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    assert deployment["spec"]["replicas"] == 2
    assert "--leader-elect" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert spec["topologySpreadConstraints"]
    env = {item["name"]: item for item in container["env"]}
    # The bot token is a mounted Secret read through slack.token_file, never an env var.
    assert "SLACK_BOT_TOKEN" not in env
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["slack-token"]["secret"]["secretName"] == "sla-monitor-slack"
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["slack-token"]["readOnly"] is True
    token_dir = mounts["slack-token"]["mountPath"]
    config_map = volumes["config"]["configMap"]["name"]  # with its content hash suffix
    shipped = yaml.safe_load(find(overlay, "ConfigMap", config_map)["data"]["sla.yaml"])
    assert shipped["slack"]["token_file"] == f"{token_dir}/token"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert volumes["tmp"]["emptyDir"]
    assert mounts["tmp"]["mountPath"] == "/tmp"
    find(overlay, "PodDisruptionBudget")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_http_is_reachable_only_from_home_and_monitoring_on_its_port(overlay: str) -> None:
    spec = find(overlay, "NetworkPolicy")["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    [rule] = spec["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    # An empty podSelector alone: every pod of the policy's own namespace, nothing more.
    assert rule["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]


def test_gke_uses_workload_identity_and_cloud_logging(tmp_path: Path) -> None:
    account = find("gke", "ServiceAccount")
    assert "iam.gke.io/gcp-service-account" in account["metadata"]["annotations"]
    (tmp_path / "sla.yaml").write_text(find("gke", "ConfigMap")["data"]["sla.yaml"])
    assert load_config(tmp_path / "sla.yaml").cloud_logging is not None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_are_readable_exactly_where_the_config_watches(
    overlay: str, tmp_path: Path
) -> None:
    """Listed namespaces: a Role in each and nothing cluster-wide; none: ClusterRoles."""
    config = shipped_config(overlay, tmp_path)
    expected = {("batch", "jobs")}
    if config.kubernetes.pod_logs:
        expected |= {("", "pods"), ("", "pods/log")}
    if config.argo.enabled:
        expected.add(("argoproj.io", "workflows"))
    home = home_namespace(overlay)
    scopes: dict[str, set[tuple[str, str]]] = {}
    for document in documents(overlay):
        if document["kind"] in ROLES:
            scope = document["metadata"].get("namespace", "*")
            scopes.setdefault(scope, set()).update(granted_resources(document) & WORKLOADS)
    assert not scopes.pop(home, set()), "the home Role grants no workload"
    watched = set(config.kubernetes.namespaces)
    if watched:
        kinds = {document["kind"] for document in documents(overlay)}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "nothing cluster-wide"
        assert scopes == dict.fromkeys(watched, expected)
    else:
        assert scopes == {"*": expected}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_role_is_bound_to_the_monitor_alone(overlay: str) -> None:
    """The fake API server enforces the rules, not the bindings: they are checked here.

    A RoleBinding to a ClusterRole would make the fake grant cluster-wide what the real
    server grants in one namespace, so every binding names a role of its own scope.
    """
    home = home_namespace(overlay)
    objects = documents(overlay)
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        for d in objects
        if d["kind"] in ROLES
    }
    bound = set()
    for binding in (d for d in objects if d["kind"] in BINDINGS):
        namespace = binding["metadata"].get("namespace")
        role_kind = "Role" if binding["kind"] == "RoleBinding" else "ClusterRole"
        assert binding["roleRef"]["kind"] == role_kind, binding["metadata"]
        bound.add((role_kind, namespace, binding["roleRef"]["name"]))
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "sla-monitor", "namespace": home}
        ], binding["metadata"]
    assert bound == roles


def test_prometheus_rule_watches_the_watcher() -> None:
    rule_file = DEPLOY / "components" / "prometheus-rule" / "prometheusrule.yaml"
    import yaml

    rule = yaml.safe_load(rule_file.read_text())
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert "sla_monitor_last_tick_timestamp_seconds" in alerts["SlaMonitorStuck"]["expr"]
    assert {"SlaMonitorDown", "SlaMonitorNoLeader", "SlaMonitorStuck"} <= set(alerts)


POLICY_LOCK = DEPLOY / "policy" / "requirements.lock"
#: checkov's own environment (its pins conflict with the product's), built by .ci/run.
POLICY_ENV = DEPLOY.parent / ".venv-policy"


def lock_digest() -> str:
    return hashlib.sha256(POLICY_LOCK.read_bytes()).hexdigest()


def policy_checker() -> Path | None:
    """checkov from an environment built from the current lock, or None when there is none."""
    ready = POLICY_ENV / "ready"
    checkov = POLICY_ENV / "bin" / "checkov"
    if not ready.exists() or ready.read_text().strip() != lock_digest() or not checkov.exists():
        return None
    return checkov


@pytest.mark.skipif(sys.version_info >= (3, 15), reason="checkov's pins do not install on 3.15+")
def test_policy_check_has_no_failures_and_every_skip_is_justified() -> None:
    checkov = policy_checker()
    if checkov is None:
        pytest.skip(
            "checkov's environment is absent or older than deploy/policy/requirements.lock; "
            "`bash .ci/run` builds it in .venv-policy before the tests"
        )
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(RENDERED),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(result.stdout)
    failed = report["results"]["failed_checks"]
    assert not failed, [(c["check_id"], c["resource"], c["check_name"]) for c in failed]
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} is skipped without a reason"
    assert report["summary"]["passed"] > 50
