"""Label and field selectors, as the API server parses them (the common subset).

Label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined
by commas. Field selectors: `path=v`, `path==v`, `path!=v` on dotted paths such as
`metadata.name`, `metadata.namespace` or `status.phase`. A selector that does not parse
answers 400, like the real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from monitor.testing.kube_store import KEEP_ALL, ApiError

Predicate = Callable[[dict[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_TERM = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*))?\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside `( … )`."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [term for term in terms if term.strip()]


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else {}


def _label_in(key: str, values: set[str], inside: bool) -> Predicate:
    return lambda obj: (_labels(obj).get(key) in values) == inside


def _label_exists(key: str, present: bool) -> Predicate:
    return lambda obj: (key in _labels(obj)) == present


def _label_equals(key: str, value: str, equal: bool) -> Predicate:
    return lambda obj: (_labels(obj).get(key) == value) == equal


def _field_equals(path: str, value: str, equal: bool) -> Predicate:
    return lambda obj: (_field(obj, path) == value) == equal


def label_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda obj: True
    checks: list[Predicate] = []
    for term in _split_terms(selector):
        set_match = _SET_TERM.match(term)
        if set_match:
            key, operator, values_text = set_match.groups()
            values = {value.strip() for value in values_text.split(",")}
            checks.append(_label_in(key, values, operator == "in"))
            continue
        match = _TERM.match(term)
        if match is None:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        negated, key, operator, value = match.groups()
        if operator is None:
            checks.append(_label_exists(key, not negated))
        elif negated:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        else:
            checks.append(_label_equals(key, value, operator != "!="))
    return lambda obj: all(check(obj) for check in checks)


def _field(obj: Any, path: str) -> str:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return "" if obj is None else str(obj)


def field_selector(selector: str | None) -> Predicate:
    if not selector:
        return lambda obj: True
    checks: list[Predicate] = []
    for term in _split_terms(selector):
        match = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if match is None:
            raise ApiError(400, "BadRequest", f"invalid field selector: {term!r}")
        path, operator, value = match.groups()
        checks.append(_field_equals(path, value, operator != "!="))
    return lambda obj: all(check(obj) for check in checks)


def selector_predicate(labels: str | None, fields: str | None) -> Predicate:
    by_label, by_field = label_selector(labels), field_selector(fields)
    if not labels and not fields:
        return KEEP_ALL
    return lambda obj: by_label(obj) and by_field(obj)
