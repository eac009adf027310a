"""Who may do what: RBAC rules from Role/ClusterRole YAML, and a record of every request.

The fake answers 403 with the real API server's Status message for any resource request
outside the granted rules, and records each request's attributes, so a test can prove a
deployment's RBAC is both sufficient (no 403) and minimal (every grant is used).
ClusterRole rules apply everywhere; Role rules only in the Role's namespace. Bindings are
assumed (the rules given are the caller's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from monitor.testing.kube_store import ApiError


@dataclass(frozen=True)
class RequestAttributes:
    """What RBAC sees of a request (also what the fake records)."""

    verb: str
    api_group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    limit: int = 0  # a list's page size (not an RBAC attribute: recorded for tests)

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class Rule:
    api_groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    resource_names: frozenset[str]
    namespace: str | None  # None: cluster-wide (ClusterRole)

    def allows(self, request: RequestAttributes) -> bool:
        if self.namespace is not None and request.namespace != self.namespace:
            return False
        if not ({"*", request.api_group} & self.api_groups):
            return False
        if not ({"*", request.resource_path} & self.resources):
            return False
        if not ({"*", request.verb} & self.verbs):
            return False
        return not self.resource_names or request.name in self.resource_names


def rules_from_yaml(documents: Iterable[str]) -> list[Rule]:
    """Every rule of every Role/ClusterRole in the given YAML texts (other kinds ignored)."""
    rules: list[Rule] = []
    for text in documents:
        for doc in yaml.safe_load_all(text):
            if not isinstance(doc, dict) or doc.get("kind") not in ("Role", "ClusterRole"):
                continue
            namespace = None
            if doc["kind"] == "Role":
                namespace = str(doc.get("metadata", {}).get("namespace", "default"))
            for raw in doc.get("rules") or []:
                rules.append(_rule(raw, namespace))
    return rules


def _rule(raw: dict[str, Any], namespace: str | None) -> Rule:
    return Rule(
        api_groups=frozenset(raw.get("apiGroups") or []),
        resources=frozenset(raw.get("resources") or []),
        verbs=frozenset(raw.get("verbs") or []),
        resource_names=frozenset(raw.get("resourceNames") or []),
        namespace=namespace,
    )


class Authorizer:
    """Checks requests against rules; `user` is named in 403 messages."""

    def __init__(self, rules: list[Rule], user: str) -> None:
        self.rules = rules
        self.user = user

    def check(self, request: RequestAttributes) -> None:
        if any(rule.allows(request) for rule in self.rules):
            return
        group_resource = (
            f"{request.resource_path}.{request.api_group}"
            if request.api_group
            else request.resource_path
        )
        named = f' "{request.name}"' if request.name else ""
        scope = (
            f'in the namespace "{request.namespace}"'
            if request.namespace
            else "at the cluster scope"
        )
        raise ApiError(
            403,
            "Forbidden",
            f'{group_resource}{named} is forbidden: User "{self.user}" cannot '
            f'{request.verb} resource "{request.resource_path}" in API group '
            f'"{request.api_group}" {scope}',
            {"name": request.name, "group": request.api_group, "kind": request.resource},
        )
