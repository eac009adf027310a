"""Load the SLA config from a file or a directory and report every error as FILE:LINE:COL.

A directory means every `*.yaml`/`*.yml` in it (sorted, hidden files skipped), merged:
`batches` lists are concatenated in file order, every other top-level key belongs to one
file only. The merged data is validated by the pydantic models of `monitor.config.model`, and
each pydantic error's `loc` is mapped back to the file position it came from. Nothing is
raised until every file has been read and every check has run: `ConfigError` carries all
problems at once, sorted by file, line and column.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.dataclasses import is_pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from monitor.config.cadence import calendar_problem
from monitor.config.model import Config
from monitor.config.yaml_nodes import (
    DataPath,
    Located,
    Position,
    Problem,
    YamlDocument,
    read_yaml,
    shown,
)

__all__ = ["ConfigError", "Position", "Problem", "config_json_schema", "load_config"]

_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_MERGED_LIST = "batches"
#: Largest config file read: 10,000 batches are about 1 MiB (and so is a ConfigMap at most).
MAX_FILE_BYTES = 16 * 2**20
_READ_PIECE = 2**20


class ConfigError(Exception):
    """Every problem found in a config, ready to print one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """`FILE:LINE:COL: message` lines sorted by file, line and column."""
        return [problem.line() for problem in self.problems]


def config_json_schema() -> dict[str, Any]:
    """The config's JSON Schema, for editors (yaml-language-server) and `sla-monitor schema`."""
    return {"$schema": _JSON_SCHEMA_DIALECT, **Config.model_json_schema()}


def load_config(path: str | Path) -> Config:
    """Read, merge and validate a config file or directory; ConfigError lists all problems.

    Positions are needed only to report problems, and recording them needs the whole
    document composed at once: for 10,000 batches, tens of MB that a reload would leave
    behind as fragmented heap. So the files are read first without them, one batch at a
    time; only a config with problems is read again, with them, to place every problem at
    its FILE:LINE:COL.
    """
    try:
        return _load(path, located=False)
    except ConfigError:
        return _load(path, located=True)


def _load(path: str | Path, *, located: bool) -> Config:
    documents = [_read(label, file, located) for label, file in _config_files(path)]
    merged = _merge(documents)
    problems = merged.problems + _duplicate_batch_names(merged)
    config: Config | None = None
    if merged.data is not None:
        try:
            config = Config.model_validate(merged.data)
        except ValidationError as error:
            problems += _explain(error.errors(include_url=False), merged)
    if config is not None and not problems:
        problems += (
            _unrouted(config, merged)
            + _workflows_without_argo(config, merged)
            + _unknown_calendars(config, merged)
            + _unknown_silenced(config, merged)
            + _deadlines_off_calendar(config, merged)
        )
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _config_files(path: str | Path) -> list[tuple[str, Path]]:
    """(label as printed, file) pairs: the file itself, or the YAML files of a directory."""
    label = str(path)
    where = Path(path)
    if not where.is_dir():
        return [(label, where)]
    files = sorted(
        child
        for child in where.iterdir()
        if child.suffix in {".yaml", ".yml"} and not child.name.startswith(".") and child.is_file()
    )
    if not files:
        problem = Problem(Position(label, 1, 1), "no *.yaml or *.yml files in this directory")
        raise ConfigError([problem])
    return [(os.path.join(label, file.name), file) for file in files]


def _read(label: str, file: Path, located: bool) -> YamlDocument:
    try:
        with file.open("rb") as stream:
            raw = _read_at_most(stream, MAX_FILE_BYTES + 1)  # a device, a huge file: not all
    except FileNotFoundError:
        return _unreadable(label, Position(label, 1, 1), "no such file or directory")
    except OSError as error:
        return _unreadable(label, Position(label, 1, 1), f"cannot read: {error.strerror}")
    if len(raw) > MAX_FILE_BYTES:
        limit = f"at most {MAX_FILE_BYTES // 2**20} MiB"
        return _unreadable(label, Position(label, 1, 1), f"file too large: {limit}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line_start = before.rfind(b"\n") + 1
        column = len(before[line_start:].decode("utf-8", "replace")) + 1
        at = Position(label, before.count(b"\n") + 1, column)
        return _unreadable(label, at, "not UTF-8 text")
    return read_yaml(label, text, located=located)


def _read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """Up to `limit` bytes, to the end. In pieces: `read(limit)` allocates all of `limit`
    at once (16 MiB for every config load, most of a small config's peak)."""
    pieces: list[bytes] = []
    size = 0
    while size < limit and (piece := stream.read(min(_READ_PIECE, limit - size))):
        pieces.append(piece)
        size += len(piece)
    return b"".join(pieces)


def _unreadable(label: str, at: Position, message: str) -> YamlDocument:
    return YamlDocument(label, problems=[Problem(at, message)])


@dataclass
class _Merged:
    """All files as one document: data, positions (per file) and problems so far."""

    data: dict[str, Any] | None = None
    positions: dict[DataPath, Located] = field(default_factory=dict)
    reported: set[DataPath] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def locate(self, path: DataPath) -> tuple[Located | None, bool]:
        """The position of `path` or of its longest known prefix; True when exact."""
        for length in range(len(path), -1, -1):
            found = self.positions.get(path[:length])
            if found is not None:
                return found, length == len(path)
        return None, False


def _merge(documents: list[YamlDocument]) -> _Merged:
    merged = _Merged()
    owners: dict[str, YamlDocument] = {}
    for document in documents:
        merged.problems += document.problems
        if not isinstance(document.data, dict):
            continue
        if merged.data is None:
            merged.data = {}
            if () in document.positions:
                merged.positions[()] = document.positions[()]
        for key, value in document.data.items():
            shift: int | None = None
            current = merged.data.get(key)
            if key == _MERGED_LIST and isinstance(value, list) and isinstance(current, list):
                shift = len(current)
                current.extend(value)
            elif key in owners:
                merged.problems += _claimed_twice(key, owners[key], document)
                continue
            else:
                owners[key] = document
                merged.data[key] = (
                    list(value) if key == _MERGED_LIST and isinstance(value, list) else value
                )
            _copy_positions(document, key, shift, merged)
    return merged


def _copy_positions(document: YamlDocument, key: str, shift: int | None, merged: _Merged) -> None:
    """Bring one top-level key's positions over, renumbering appended batches."""

    def moved(path: DataPath) -> DataPath:
        if shift is None or len(path) < 2 or not isinstance(path[1], int):
            return path
        return (path[0], path[1] + shift, *path[2:])

    for path, located in document.positions.items():
        if path and path[0] == key and (shift is None or len(path) > 1):
            merged.positions[moved(path)] = located
    merged.reported.update(moved(path) for path in document.reported if path and path[0] == key)


def _claimed_twice(key: str, first: YamlDocument, second: YamlDocument) -> list[Problem]:
    first_at = _key_position(first, key)
    second_at = _key_position(second, key)
    rule = f"only '{_MERGED_LIST}' lists may be split across files"
    return [
        Problem(first_at, f"top-level key {key!r} is set again at {second_at}; {rule}"),
        Problem(second_at, f"top-level key {key!r} is already set at {first_at}; {rule}"),
    ]


def _key_position(document: YamlDocument, key: str) -> Position:
    located = document.positions.get((key,))
    if located is None:
        return Position(document.file, 1, 1)
    return located.key or located.value


def _duplicate_batch_names(merged: _Merged) -> list[Problem]:
    """Batch names are alert-key prefixes: both places of a repeated one are reported."""
    batches = (merged.data or {}).get(_MERGED_LIST)
    if not isinstance(batches, list):
        return []
    first_of: dict[str, int] = {}
    problems: list[Problem] = []
    for index, batch in enumerate(batches):
        name = batch.get("name") if isinstance(batch, dict) else None
        if not isinstance(name, str):
            continue
        if first_of.setdefault(name, index) != index:
            first = _position_of(merged, (_MERGED_LIST, first_of[name], "name"), pick="value")
            at = _position_of(merged, (_MERGED_LIST, index, "name"), pick="value")
            problems.append(Problem(first, f"batch name {name!r} is used again at {at}"))
            problems.append(Problem(at, f"duplicate batch name {name!r} (first at {first})"))
    return problems


def _unrouted(config: Config, merged: _Merged) -> list[Problem]:
    """Alerts with no channel anywhere would be lost: a config bug, not a runtime surprise."""
    if config.slack.channel:
        return []
    fix = "set 'slack: {channel: ...}' here or a top-level 'slack.channel'"
    problems = []
    for index, batch in enumerate(config.batches):
        if not batch.slack.channel:
            at = _position_of(merged, (_MERGED_LIST, index), pick="value")
            problems.append(Problem(at, f"batch {batch.name!r} has no Slack channel: {fix}"))
    if config.unmatched is not None and not config.unmatched.slack.channel:
        at = _position_of(merged, ("unmatched",), pick="key")
        problems.append(Problem(at, f"'unmatched' alerts have no Slack channel: {fix}"))
    return problems


def _workflows_without_argo(config: Config, merged: _Merged) -> list[Problem]:
    """A `match.workflow` batch would never see a run unless Workflows are watched."""
    if config.argo.enabled:
        return []
    return [
        Problem(
            _position_of(merged, (_MERGED_LIST, index, "match", "workflow"), pick="key"),
            f"batch {batch.name!r} matches a workflow, but Argo Workflows are not watched: "
            "set 'argo: {enabled: true}'",
        )
        for index, batch in enumerate(config.batches)
        if batch.match.workflow is not None
    ]


def _unknown_calendars(config: Config, merged: _Merged) -> list[Problem]:
    """A batch naming a calendar the config does not define."""
    known = sorted(config.calendars)
    return [
        Problem(
            _position_of(merged, (_MERGED_LIST, index, "calendar"), pick="value"),
            f"unknown calendar {batch.calendar!r}; "
            + (f"defined: {', '.join(known)}" if known else "define it under 'calendars'"),
        )
        for index, batch in enumerate(config.batches)
        if batch.calendar is not None and batch.calendar not in config.calendars
    ]


def _unknown_silenced(config: Config, merged: _Merged) -> list[Problem]:
    """A silence naming a batch the config does not have (a typo would silence nothing)."""
    names = {batch.name for batch in config.batches}
    return [
        Problem(
            _position_of(merged, ("silences", index, "batches", position), pick="value"),
            f'unknown batch {name!r} in a silence (use "*" for every batch)',
        )
        for index, silence in enumerate(config.silences)
        for position, name in enumerate(silence.batches)
        if name != "*" and name not in names
    ]


def _deadlines_off_calendar(config: Config, merged: _Merged) -> list[Problem]:
    """A cron its calendar leaves (almost) no deadline of, or too many skipped in a row."""
    problems = []
    for index, batch in enumerate(config.batches):
        if batch.deadline is None or batch.calendar not in config.calendars:
            continue  # an unknown calendar is reported as such
        calendar = config.calendar_of(batch)
        found = calendar_problem(batch.deadline, calendar) if calendar is not None else None
        if found is not None:
            at = _position_of(merged, (_MERGED_LIST, index, "deadline"), pick="value")
            problems.append(Problem(at, found))
    return problems


def _position_of(merged: _Merged, path: DataPath, pick: str) -> Position:
    """`pick`: "key" (the key naming the value), "value", or "best" (key if value empty)."""
    located, exact = merged.locate(path)
    if located is None:
        return Position("?", 1, 1)
    if not exact:
        return located.value
    if pick == "key":
        return located.key or located.value
    return located.best() if pick == "best" else located.value


#: What pydantic calls an error of a pydantic dataclass (a batch, a match), as it calls the
#: same error of a `BaseModel`: both are explained alike.
_AS_MODEL_ERROR = {
    "unexpected_keyword_argument": "extra_forbidden",
    "missing_argument": "missing",
    "dataclass_type": "model_type",
    "dataclass_args_type": "model_type",
}


def _explain(errors: list[ErrorDetails], merged: _Merged) -> list[Problem]:
    problems = []
    for error in errors:
        error["type"] = _AS_MODEL_ERROR.get(error["type"], error["type"])
        loc = tuple(error["loc"])
        if any(loc[:length] in merged.reported for length in range(len(loc) + 1)):
            continue  # its value was dropped after a YAML-level problem already reported
        if error["type"] == "extra_forbidden":
            at = _position_of(merged, loc, pick="key")
        elif error["type"] == "missing":
            at = _position_of(merged, loc[:-1], pick="key")
        else:
            at = _position_of(merged, loc, pick="best")
        problems.append(Problem(at, _message(error)))
    return problems


def _message(error: ErrorDetails) -> str:
    """pydantic's message, said the way a person editing YAML needs to hear it."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _fields_at(loc[:-1]))
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    if kind in {"value_error", "assertion_error"} and "error" in context:
        return str(context["error"])
    if kind == "string_type":
        return f"expected a string, got {_describe(value)}{_quote_hint(value)}"
    if kind in {"bool_type", "bool_parsing"}:
        return f"expected true or false, got {_describe(value)}"
    if kind == "list_type":
        single = isinstance(value, str) and value.isprintable() and len(value) <= 40
        hint = f" (for a single item write [{value}])" if single else ""
        return f"expected a list, got {_describe(value)}{hint}"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return f"expected a mapping (key: value), got {_describe(value)}"
    if kind in {"string_too_long", "string_too_short"}:
        size = len(value) if isinstance(value, str) else "?"
        bound = ("at most", context.get("max_length"))
        if kind == "string_too_short":
            bound = ("at least", context.get("min_length"))
        return f"text is too {kind[11:]}: {size} characters, {bound[0]} {bound[1]}"
    if kind in {"too_long", "too_short"}:
        actual = context.get("actual_length")
        if actual is None:
            actual = len(value) if isinstance(value, list | dict | str) else "?"
        if kind == "too_long":
            return f"too many items: {actual}, at most {context.get('max_length')}"
        return f"too few items: {actual}, at least {context.get('min_length')}"
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return message.replace("Input should be", "expected")


def _unknown_key(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    if valid:
        return f"unknown key {key!r}; valid keys: {', '.join(valid)}"
    return f"unknown key {key!r}"


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int) and abs(value) >= 10**40:
        return "a very large number"  # printing it could exceed Python's 4,300-digit limit
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return type(value).__name__


def _quote_hint(value: Any) -> str:
    # YAML turns `1`, `on`, `2024-01-01` into non-strings; quoting is the fix people need.
    return " (quote it to make it a string)" if isinstance(value, int | float | date) else ""


def _fields_at(path: tuple[str | int, ...]) -> list[str]:
    """The keys allowed in the mapping at `path`, for did-you-mean suggestions."""
    current: Any = Config
    for part in path:
        fields = _fields_of(current)
        if fields is not None:
            if not isinstance(part, str) or part not in fields:
                return []
            current = _unwrap(fields[part].annotation)
        elif get_origin(current) is list and isinstance(part, int):
            current = _unwrap(get_args(current)[0])
        else:
            return []
    return list(_fields_of(current) or ())


def _fields_of(model: Any) -> dict[str, FieldInfo] | None:
    """The fields of a model class or a pydantic dataclass (None: `model` is neither)."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_fields
    if isinstance(model, type) and is_pydantic_dataclass(model):
        return model.__pydantic_fields__
    return None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if get_origin(annotation) in {Union, types.UnionType}:
        options = [option for option in get_args(annotation) if option is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation
