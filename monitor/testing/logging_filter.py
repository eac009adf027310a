"""An honest subset of the Cloud Logging query language, for the loopback fake.

Supported: `AND`, `OR`, `NOT` (and `-` for NOT), implicit AND by juxtaposition,
parentheses, comparisons `=`, `!=`, `:` (has), `<`, `<=`, `>`, `>=` on field paths
(`resource.labels.pod_name`, `labels."k8s-pod/job-name"`, `jsonPayload.message`),
right-hand sides such as `("a" OR "b")`, timestamps and severities compared by value,
and quoted global restrictions (`"Traceback"` searched in every field).
As in the real language, NOT binds tightest and OR binds tighter than AND, and string
comparison is case-insensitive. Anything else (regex operators, functions, unknown
LogEntry fields, unquoted text with special characters, unparseable timestamps) raises
`FilterError`, which the fake answers with the API's 400 INVALID_ARGUMENT, so a filter
the real service would reject or read differently fails a test instead of matching.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.core.rfc3339 import parse_rfc3339

LOG_ENTRY_FIELDS = frozenset(
    {
        "logName", "resource", "timestamp", "receiveTimestamp", "severity", "insertId",
        "httpRequest", "labels", "operation", "trace", "spanId", "traceSampled",
        "sourceLocation", "split", "textPayload", "jsonPayload", "protoPayload",
    }
)  # fmt: skip
TIME_FIELDS = frozenset({"timestamp", "receiveTimestamp"})
SEVERITIES = {
    "DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400,
    "ERROR": 500, "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800,
}  # fmt: skip
COMPARATORS = ("!=", "<=", ">=", "=", ":", "<", ">")


class FilterError(ValueError):
    """The filter is not in the supported language (the real API would answer 400)."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", "op", "string", "word", "path", "keyword", "minus"
    text: str
    position: int
    segments: tuple[str, ...] = ()


_WORD = re.compile(r"[A-Za-z0-9_@*+\-/]+")
_SPECIAL_OPS = ("=~", "!~")


def _read_string(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise FilterError(f"unterminated string starting at column {start + 1}")


def _read_path_or_word(text: str, start: int) -> _Token:
    """A run of word characters, possibly a dotted path with quoted segments."""
    segments: list[str] = []
    index = start
    while True:
        if index < len(text) and text[index] == '"':
            segment, index = _read_string(text, index)
        else:
            match = _WORD.match(text, index)
            if match is None:
                raise FilterError(f"unexpected character at column {index + 1}")
            segment, index = match.group(), match.end()
        segments.append(segment)
        if index < len(text) and text[index] == "." and index + 1 < len(text):
            following = text[index + 1]
            if following == '"' or _WORD.match(following):
                index += 1
                continue
        break
    raw = text[start:index]
    kind = "path" if len(segments) > 1 else "word"
    return _Token(kind, raw, start, tuple(segments))


def tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char in "()":
            tokens.append(_Token(char, char, index))
            index += 1
        elif text.startswith(_SPECIAL_OPS, index):
            raise FilterError(
                f"unsupported operator {text[index : index + 2]!r} at column {index + 1}"
            )
        elif text.startswith(COMPARATORS, index):
            op = next(op for op in COMPARATORS if text.startswith(op, index))
            tokens.append(_Token("op", op, index))
            index += len(op)
        elif char == '"':
            value, end = _read_string(text, index)
            tokens.append(_Token("string", value, index, (value,)))
            index = end
        elif char == "-" and index + 1 < len(text) and not text[index + 1].isspace():
            previous = tokens[-1].kind if tokens else None
            if previous in (None, "(", "keyword"):
                tokens.append(_Token("minus", "-", index))
                index += 1
            else:
                token = _read_path_or_word(text, index)
                tokens.append(token)
                index += len(token.text)
        else:
            token = _read_path_or_word(text, index)
            end = index + len(token.text)
            if end < len(text) and text[end] == "(" and token.text not in ("AND", "OR", "NOT"):
                raise FilterError(f"unsupported function {token.text!r} at column {index + 1}")
            if token.kind == "word" and token.text in ("AND", "OR", "NOT"):
                token = _Token("keyword", token.text, index)
            tokens.append(token)
            index += len(token.text)
    return tokens


Predicate = Callable[[Mapping[str, Any]], bool]
ValueTest = Callable[[Any], bool]


class _Parser:
    """Recursive descent: and_expr := or_expr {[AND] or_expr}; or_expr := unary {OR unary}."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of filter")
        self.index += 1
        return token

    def parse(self) -> Predicate:
        if not self.tokens:
            return lambda entry: True
        predicate = self.conjunction(self.unary, nested=False)
        if self.peek() is not None:
            token = self.take()
            raise FilterError(f"unexpected {token.text!r} at column {token.position + 1}")
        return predicate

    def conjunction(
        self, operand: Callable[[], Callable[[Any], bool]], *, nested: bool
    ) -> Callable[[Any], bool]:
        parts = [self.disjunction(operand)]
        while (token := self.peek()) is not None and not (token.kind == ")" and nested):
            if token.kind == "keyword" and token.text == "AND":
                self.take()
            elif token.kind == ")":
                break
            parts.append(self.disjunction(operand))
        return parts[0] if len(parts) == 1 else _all(parts)

    def disjunction(self, operand: Callable[[], Callable[[Any], bool]]) -> Callable[[Any], bool]:
        parts = [operand()]
        while (token := self.peek()) is not None and token.kind == "keyword" and token.text == "OR":
            self.take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else _any(parts)

    def unary(self) -> Predicate:
        token = self.take()
        if token.kind == "minus" or (token.kind == "keyword" and token.text == "NOT"):
            inner = self.unary()
            return lambda entry: not inner(entry)
        if token.kind == "(":
            inner = self.conjunction(self.unary, nested=True)
            self.expect(")")
            return inner
        following = self.peek()
        if token.kind in ("path", "word") and following is not None and following.kind == "op":
            self.take()
            return self.comparison(token, following.text)
        if token.kind in ("string", "word"):
            return _global_restriction(token.text)
        raise FilterError(f"unexpected {token.text!r} at column {token.position + 1}")

    def expect(self, kind: str) -> None:
        token = self.take()
        if token.kind != kind:
            raise FilterError(f"expected {kind!r} at column {token.position + 1}")

    def comparison(self, field: _Token, op: str) -> Predicate:
        path = field.segments
        _check_path(path, field.position)
        value_test = self.value_expression(path, op)

        def predicate(entry: Mapping[str, Any]) -> bool:
            found, actual = _resolve(entry, path)
            if op == "!=":
                return not found or not value_test(actual)
            return found and value_test(actual)

        return predicate

    def value_expression(self, path: tuple[str, ...], op: str) -> ValueTest:
        token = self.peek()
        if token is not None and token.kind == "(":
            self.take()
            inner = self.conjunction(lambda: self.value_term(path, op), nested=True)
            self.expect(")")
            return inner
        return self.value_term(path, op)

    def value_term(self, path: tuple[str, ...], op: str) -> ValueTest:
        token = self.take()
        if token.kind == "keyword" and token.text == "NOT":
            inner = self.value_term(path, op)
            return lambda actual: not inner(actual)
        if token.kind not in ("string", "word", "path"):
            raise FilterError(f"expected a value at column {token.position + 1}")
        return _value_test(path, op, token.text, token.position)


def _all(parts: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    return lambda item: all(part(item) for part in parts)


def _any(parts: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    return lambda item: any(part(item) for part in parts)


def _check_path(path: tuple[str, ...], position: int) -> None:
    if path[0] not in LOG_ENTRY_FIELDS:
        raise FilterError(f"field {path[0]!r} (column {position + 1}) is not a LogEntry field")
    if path[0] == "resource" and len(path) > 1 and path[1] not in ("type", "labels"):
        raise FilterError(f"field 'resource.{path[1]}' does not exist")


def _resolve(entry: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    current: Any = entry
    for segment in path:
        if not isinstance(current, Mapping) or segment not in current:
            return False, None
        current = current[segment]
    return True, current


def _value_test(path: tuple[str, ...], op: str, raw: str, position: int) -> ValueTest:
    if path[0] in TIME_FIELDS and len(path) == 1:
        if op == ":":
            raise FilterError(f"':' is not defined on {path[0]}")
        try:
            bound = parse_rfc3339(raw, bounded=False)
        except ValueError as error:
            raise FilterError(f"invalid timestamp {raw!r} at column {position + 1}") from error
        return lambda actual: _compare(_as_time(actual), op, bound)
    if path == ("severity",) and op != ":":
        if raw.upper() not in SEVERITIES:
            raise FilterError(f"unknown severity {raw!r}")
        rank = SEVERITIES[raw.upper()]
        return lambda actual: _compare(SEVERITIES.get(str(actual).upper(), 0), op, rank)
    needle = raw.casefold()
    if op == ":":
        return lambda actual: any(needle in text for text in _strings(actual))
    return lambda actual: _compare(_scalar_text(actual), op, needle)


def _as_time(actual: Any) -> datetime | None:
    try:
        return parse_rfc3339(actual, bounded=False)
    except ValueError:
        return None


def _compare(actual: Any, op: str, bound: Any) -> bool:
    if actual is None:
        return False
    if op in ("=", "!="):
        return bool(actual == bound)
    if op == "<":
        return bool(actual < bound)
    if op == "<=":
        return bool(actual <= bound)
    if op == ">":
        return bool(actual > bound)
    return bool(actual >= bound)


def _scalar_text(actual: Any) -> str | None:
    if isinstance(actual, bool):
        return str(actual).casefold()
    if isinstance(actual, str | int | float):
        return str(actual).casefold()
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every scalar inside `value`, casefolded: what `:` and global search look at."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif (text := _scalar_text(value)) is not None:
        yield text


def _global_restriction(raw: str) -> Predicate:
    needle = raw.casefold()
    return lambda entry: any(needle in text for text in _strings(entry))


def compile_filter(text: str) -> Predicate:
    """Compile `text` to a predicate over LogEntry dicts; raise FilterError if unsupported."""
    if len(text) > 20_000:
        raise FilterError("filter is longer than 20000 characters")
    return _Parser(text).parse()
