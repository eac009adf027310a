"""What the fake serves besides stored objects: discovery documents and patch semantics.

Discovery (`/version`, `/api`, `/apis`, resource lists) lets the client and kubectl-like
tools find the served resources; merge patch (RFC 7386, also used for strategic merge
patch here) and JSON patch (RFC 6902 subset) are how `patch_*` calls change objects.
"""

from __future__ import annotations

from typing import Any

from monitor.testing.kube_store import RESOURCE_TYPES, ApiError, JsonObject


def discovery_document(path: str) -> JsonObject | None:
    path = path.rstrip("/")
    if path == "/version":
        return {
            "major": "1",
            "minor": "31",
            "gitVersion": "v1.31.0-fake",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-08-13T00:00:00Z",
            "goVersion": "go1.22.5",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    groups = sorted({rt.group for rt in RESOURCE_TYPES if rt.group})
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{group}/v1", "version": "v1"},
                }
                for group in groups
            ],
        }
    for group_version in ["v1", *(f"{group}/v1" for group in groups)]:
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        if path == prefix:
            return _resource_list(group_version)
    return None


def _resource_list(group_version: str) -> JsonObject:
    resources = []
    for rt in RESOURCE_TYPES:
        if rt.api_version != group_version:
            continue
        resources.append(
            {
                "name": rt.resource,
                "singularName": rt.kind.lower(),
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
        )
        if rt.resource == "pods":
            resources.append(
                {
                    "name": "pods/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 subset: add, replace, remove, test."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    for operation in operations:
        path = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        parent = document
        for part in path[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = path[-1]
        op = operation["op"]
        if op == "test":
            actual = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if actual != operation.get("value"):
                raise ApiError(422, "Invalid", f"test operation failed at {operation['path']}")
        elif op == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif op in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(index, operation["value"])
                else:
                    parent[index] = operation["value"]
            else:
                parent[last] = operation["value"]
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation {op!r}")
    return document
