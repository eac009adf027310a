"""Config loading: exact FILE:LINE:COL errors, directory merging, the example and the schema.

The broken examples under tests/config_errors/ are checked end to end through
`python -m monitor check-config`, comparing stderr with their `.expected` files line by line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import cli
from monitor.config.load import ConfigError, config_json_schema, load_config
from monitor.config.model import Config

REPO = Path(__file__).resolve().parents[2]
ERRORS = REPO / "tests" / "config_errors"
EXAMPLE = REPO / "config" / "sla.yaml"
SCHEMA_FILE = REPO / "config" / "sla-monitor.schema.json"
CASES = sorted(
    path.name for path in ERRORS.iterdir() if path.is_dir() or path.suffix in {".yaml", ".yml"}
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def _errors(path: str | Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.lines()


# --- the broken examples, end to end -------------------------------------------------


def test_every_broken_example_has_expected_output() -> None:
    assert len(CASES) >= 15
    for case in CASES:
        assert (ERRORS / f"{Path(case).stem}.expected").is_file(), case


def _expected(case: str) -> list[str]:
    return (ERRORS / f"{Path(case).stem}.expected").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("case", CASES)
def test_check_config_prints_exact_errors(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert cli.main(["check-config", f"tests/config_errors/{case}"]) == 1
    printed = capsys.readouterr()
    assert printed.err.splitlines() == _expected(case)
    assert printed.out == ""


@pytest.mark.parametrize(
    "case", ["unknown_key.yaml", "yaml_syntax.yaml", "duplicate_batch_across_files"]
)
def test_check_config_as_a_process(case: str) -> None:
    run = _cli("check-config", f"tests/config_errors/{case}")
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr.splitlines() == _expected(case)


def test_error_lines_have_the_promised_shape() -> None:
    shape = re.compile(r"^tests/config_errors/[\w./-]+:\d+:\d+: \S")
    for expected in ERRORS.glob("*.expected"):
        for line in expected.read_text(encoding="utf-8").splitlines():
            assert shape.match(line), line


def test_check_config_accepts_the_example_directory_and_file() -> None:
    for target in ("config/", "config", "config/sla.yaml"):
        run = _cli("check-config", target)
        assert (run.returncode, run.stderr) == (0, ""), target
        assert run.stdout == f"{target}: OK (4 batches)\n"


def test_schema_command_prints_the_schema() -> None:
    run = _cli("schema")
    assert run.returncode == 0
    assert json.loads(run.stdout) == config_json_schema()


# --- the example config and the committed schema -------------------------------------


def test_committed_schema_is_current() -> None:
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == config_json_schema(), (
        "regenerate: python -m monitor schema > config/sla-monitor.schema.json"
    )


def test_example_points_editors_at_the_schema() -> None:
    first_line = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=./sla-monitor.schema.json"


def _schema_keys_missing(value: Any, node: dict[str, Any], root: dict[str, Any]) -> list[str]:
    """Keys of `value` the schema would reject as unknown (a tiny JSON Schema walker)."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    for option in node.get("anyOf", []):
        kind = option.get("type") or root["$defs"].get(option.get("$ref", "#/x").rsplit("/", 1)[1])
        if (isinstance(value, dict) and kind not in (None, "null", "string", "array")) or (
            isinstance(value, list) and kind == "array"
        ):
            return _schema_keys_missing(value, option, root)
    missing: list[str] = []
    if isinstance(value, dict) and "properties" in node:
        for key, child in value.items():
            if key not in node["properties"]:
                missing.append(key)
            else:
                missing += _schema_keys_missing(child, node["properties"][key], root)
    if isinstance(value, list) and "items" in node:
        for item in value:
            missing += _schema_keys_missing(item, node["items"], root)
    return missing


def test_schema_describes_every_key_of_the_example() -> None:
    schema = config_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "sla-monitor config"
    assert schema["additionalProperties"] is False
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert _schema_keys_missing(example, schema, schema) == []
    assert _schema_keys_missing({"batches": [{"colour": 1}]}, schema, schema) == ["colour"]


def _all_option_names(model: type[Any]) -> set[str]:
    names: set[str] = set()
    fields = getattr(model, "model_fields", None) or model.__pydantic_fields__
    for name, info in fields.items():
        names.add(info.alias or name)  # the key a config writes
        for inner in re.findall(r"\b([A-Z]\w+)\b", str(info.annotation)):
            nested = getattr(sys.modules["monitor.config.model"], inner, None)
            if isinstance(nested, type) and hasattr(nested, "__pydantic_fields__"):
                names |= _all_option_names(nested)
    return names


def test_example_mentions_every_option() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    options = _all_option_names(Config)
    assert {"deadline", "freshness", "window", "grace", "mention", "endpoint"} <= options
    for option in options:
        assert re.search(rf"\b{option}:", text), f"config/sla.yaml does not show {option!r}"


def test_example_loads_with_the_documented_values() -> None:
    config = load_config(EXAMPLE)
    assert config.timezone == "Asia/Tokyo"
    assert config.cloud_logging is not None
    assert config.cloud_logging.poll_interval == timedelta(seconds=15)
    assert config.state.configmap == "monitoring/sla-monitor-state"
    daily, ranking, refresh, train = config.batches
    rule = config.deadline_rule(daily)
    assert rule is not None
    deadline = rule.cron.next_after(datetime(2026, 2, 28, 12, tzinfo=UTC))
    # 2026-03-01 is a Sunday, not a business day of its calendar: Monday's deadline is next.
    assert daily.calendar == "jp-business"
    assert deadline == datetime(2026, 3, 2, 9, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert rule.window_of(deadline) == (
        deadline - timedelta(hours=24),
        deadline + timedelta(minutes=5),
    )
    assert config.zone_of(ranking).key == "Europe/London"
    assert ranking.match.labels == {"app": "ranking", "tier": "1"}
    assert refresh.freshness == timedelta(minutes=30)
    assert config.deadline_rule(refresh) is None
    assert config.unmatched is not None
    assert not config.unmatched.notify.traceback
    assert config.argo.enabled
    assert train.match.workflow == "train"


# --- load_config directly -------------------------------------------------------------


def test_defaults_when_only_batches_are_given(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c.yaml",
        "slack: {channel: '#a'}\nbatches:\n"
        "  - {name: b, match: {namespace: n}, deadline: '0 9 * * *'}\n",
    )
    config = load_config(str(path))
    assert config.timezone == "UTC"
    assert config.slack.token_env == "SLACK_BOT_TOKEN"
    assert config.cloud_logging is None
    assert config.unmatched is None
    assert config.health.degraded_after == timedelta(minutes=5)
    assert config.batches[0].grace == timedelta(0)
    assert config.batches[0].window is None


def test_directory_merges_batches_in_file_order(tmp_path: Path) -> None:
    _write(tmp_path, "00-global.yaml", "timezone: Asia/Tokyo\nslack: {channel: '#a'}\n")
    _write(tmp_path, "20-b.yml", "batches:\n  - {name: b, match: {cronjob: b}, freshness: 1h}\n")
    _write(
        tmp_path,
        "10-a.yaml",
        "batches:\n  - {name: a1, match: {cronjob: a}, freshness: 1h}\n"
        "  - {name: a2, match: {cronjob: a}, freshness: 1h}\n",
    )
    _write(tmp_path, ".hidden.yaml", "not: [valid\n")
    _write(tmp_path, "notes.txt", "not: [valid\n")
    (tmp_path / "sub.yaml").mkdir()
    config = load_config(tmp_path)
    assert [batch.name for batch in config.batches] == ["a1", "a2", "b"]
    assert config.timezone == "Asia/Tokyo"


def test_errors_in_a_later_file_point_into_that_file(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "a.yaml",
        "slack: {channel: '#a'}\nbatches:\n  - {name: a, match: {cronjob: a}, freshness: 1h}\n",
    )
    _write(
        tmp_path,
        "b.yaml",
        "batches:\n  - name: b\n    match: {cronjob: b}\n    freshness: soon\n    colour: red\n",
    )
    label = str(tmp_path)
    assert _errors(label) == [
        f"{label}/b.yaml:4:16: invalid duration 'soon': expected a number and a unit "
        "(ms, s, m, h, d, w), e.g. '90s', '5m', '2h', '1d'",
        f"{label}/b.yaml:5:5: unknown key 'colour'; valid keys: name, match, deadline, "
        "freshness, window, grace, timezone, calendar, max_runtime, at_risk, slack, notify",
    ]


def test_directory_label_keeps_the_path_as_given(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "colour: red\n")
    assert _errors(f"{tmp_path}/")[0].startswith(f"{tmp_path}/a.yaml:1:1: unknown key 'colour'")


def test_all_errors_at_once_sorted_by_file_line_col(tmp_path: Path) -> None:
    _write(tmp_path, "b.yaml", "batches:\n  - {name: x, match: {}, deadline: '0 9 * * *', zz: 1}\n")
    _write(
        tmp_path, "a.yaml", "timezone: Nowhere\nslack: {channel: 5}\nhealth: {degraded_after: 0s}\n"
    )
    lines = _errors(tmp_path)
    positions = [tuple(line.split(": ", 1)[0].rsplit(":", 2)) for line in lines]
    assert [(file.rsplit("/", 1)[1], row, col) for file, row, col in positions] == [
        ("a.yaml", "1", "11"),
        ("a.yaml", "2", "18"),
        ("a.yaml", "3", "26"),
        ("b.yaml", "2", "22"),
        ("b.yaml", "2", "49"),
    ]


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    assert _errors(tmp_path / "nope.yaml") == [
        f"{tmp_path}/nope.yaml:1:1: no such file or directory"
    ]
    assert _errors(tmp_path) == [f"{tmp_path}:1:1: no *.yaml or *.yml files in this directory"]


def test_non_utf8_file_reports_where_decoding_failed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"timezone: UTC\nslack: {channel: '#caf\xe9'}\n")
    assert _errors(path) == [f"{path}:2:23: not UTF-8 text"]


def test_second_document_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "timezone: UTC\n---\ntimezone: UTC\n")
    assert _errors(path) == [
        f"{path}:2:1: invalid YAML: one document per file expected, found a second '---'"
    ]


def test_python_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = _write(
        tmp_path, "c.yaml", f"timezone: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    (line,) = _errors(path)
    assert line.startswith(f"{path}:1:11: unsupported YAML tag")
    assert not marker.exists()


def test_merge_keys_and_anchors_are_understood(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "e.yaml",
        "slack: {channel: '#a'}\n"
        "batches:\n"
        "  - &first {name: a, match: {cronjob: a}, deadline: '0 9 * * *', grace: 5m}\n"
        "  - <<: *first\n"
        "    name: b\n"
        "    grace: 10m\n",
    )
    config = load_config(path)
    assert [(batch.name, batch.deadline, batch.grace) for batch in config.batches] == [
        ("a", "0 9 * * *", timedelta(minutes=5)),
        ("b", "0 9 * * *", timedelta(minutes=10)),
    ]


def test_recursive_aliases_and_alias_bombs_stop_quickly(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "kubernetes: &k {namespaces: [*k]}\n")
    assert any("recursive alias" in line for line in _errors(path))
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    bomb = _write(tmp_path, "bomb.yaml", "\n".join(levels) + "\n")
    assert any("document too large" in line for line in _errors(bomb))


def test_keys_must_be_strings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c.yaml",
        "slack: {channel: '#a'}\nbatches:\n  - name: a\n    match: {labels: {on: x}}\n"
        "    freshness: 1h\n",
    )
    assert _errors(path) == [f'{path}:4:22: key True must be text (quote it: "on")']


def test_null_optional_section_means_absent(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "cloud_logging:\nunmatched: ~\n")
    config = load_config(path)
    assert config.cloud_logging is None
    assert config.unmatched is None


def test_state_configmap_needs_namespace_and_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "state:\n  configmap: just-a-name\n")
    assert _errors(path) == [f"{path}:2:14: configmap must be NAMESPACE/NAME, got 'just-a-name'"]


def test_batch_names_cannot_break_alert_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c.yaml",
        "slack: {channel: '#a'}\nbatches:\n  - {name: 'a@b', match: {cronjob: a}, freshness: 1h}\n",
    )
    assert _errors(path) == [
        f"{path}:3:12: batch name 'a@b' must not contain spaces, '@' or ':' "
        "(it is part of alert keys)"
    ]


def test_timezone_suggestion_ignores_case(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "timezone: europe/london\n")
    assert _errors(path) == [
        f"{path}:1:11: unknown IANA timezone 'europe/london'; did you mean 'Europe/London'?"
    ]


# --- properties ---------------------------------------------------------------------

_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxy-", min_size=1, max_size=12).filter(
    lambda word: "-" not in (word[0], word[-1]) and word not in {"y", "n", "yes", "no", "on", "off"}
)


def _durations(most: int, units: str) -> st.SearchStrategy[str]:
    """Durations of 1 to `most` of one of `units`: within every bound that applies."""
    return st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, most), st.sampled_from(units))


_DURATIONS = _durations(366, "smhd")  # a batch's own: at most 366d
_POLLS = _durations(59, "sm")  # at most 1h
_DEGRADED = _durations(23, "smh")  # at most 1d


@st.composite
def _configs(draw: st.DrawFn) -> dict[str, Any]:
    """Valid config data touching every section."""
    data: dict[str, Any] = {"slack": {"channel": "#" + draw(_WORDS)}}
    if draw(st.booleans()):
        data["timezone"] = draw(st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York"]))
    if draw(st.booleans()):
        data["kubernetes"] = {"namespaces": draw(st.lists(_WORDS, max_size=3)), "pod_logs": True}
    if draw(st.booleans()):
        data["cloud_logging"] = {"project": draw(_WORDS), "poll_interval": draw(_POLLS)}
    if draw(st.booleans()):
        data["health"] = {"degraded_after": draw(_DEGRADED)}
    names = draw(st.lists(_WORDS, min_size=1, max_size=4, unique=True))
    batches = []
    for name in names:
        batch: dict[str, Any] = {"name": name, "match": {"cronjob": draw(_WORDS)}}
        if draw(st.booleans()):
            batch["match"]["labels"] = {draw(_WORDS): draw(_WORDS)}
        if draw(st.booleans()):
            batch["deadline"] = draw(st.sampled_from(["0 9 * * *", "30 0 7 * * MON-FRI"]))
            if draw(st.booleans()):
                batch["window"] = draw(_DURATIONS)
            if draw(st.booleans()):
                batch["grace"] = draw(_DURATIONS)
        else:
            batch["freshness"] = draw(_DURATIONS)
        if draw(st.booleans()):
            batch["notify"] = {"job_failed": draw(st.booleans())}
        batches.append(batch)
    data["batches"] = batches
    if draw(st.booleans()):
        data["unmatched"] = {"slack": {"mention": "<!here>"}}
    return data


def _model_mappings(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every mapping whose keys are config options (not free-form labels)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict) and path[-1:] != ("labels",):
        found.append(path)
        for key, child in value.items():
            found += _model_mappings(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _model_mappings(child, (*path, index))
    return found


def _dump(data: dict[str, Any], flow: bool | None, indent: int) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=flow, indent=indent, width=80)


_STYLES = st.tuples(st.sampled_from([False, None, True]), st.integers(2, 6))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_configs(), style=_STYLES)
def test_yaml_round_trip_gives_the_same_config(
    tmp_path: Path, data: dict[str, Any], style: tuple[bool | None, int]
) -> None:
    path = _write(tmp_path, "c.yaml", _dump(data, *style))
    assert load_config(path) == Config.model_validate(data)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_configs(), style=_STYLES, choice=st.data())
def test_an_unknown_key_anywhere_is_reported_at_its_exact_place(
    tmp_path: Path, data: dict[str, Any], style: tuple[bool | None, int], choice: st.DataObject
) -> None:
    target_path = choice.draw(st.sampled_from(_model_mappings(data)))
    target: Any = data
    for part in target_path:
        target = target[part]
    unknown = "zz" + choice.draw(st.text(alphabet="abcdefghijklmnopqrstuvwxy", max_size=8))
    items = list(target.items())
    items.insert(choice.draw(st.integers(0, len(items))), (unknown, choice.draw(_WORDS)))
    target.clear()
    target.update(items)
    text = _dump(data, *style)
    path = _write(tmp_path, "c.yaml", text)

    found = re.search(rf"(?<![\w-]){unknown}(?=:)", text)
    assert found is not None
    line = text.count("\n", 0, found.start()) + 1
    col = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    (error,) = _errors(path)
    assert error.startswith(f"{path}:{line}:{col}: unknown key '{unknown}'")


def test_a_workflow_batch_needs_argo_enabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "c.yaml",
        "slack: {channel: '#a'}\nbatches:\n"
        "  - name: train\n    match: {workflow: train}\n    deadline: '0 9 * * *'\n"
        "  - name: both\n    match: {cronjob: a, workflow: b}\n    deadline: '0 9 * * *'\n",
    )
    assert cli.main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:7:12: match gives both cronjob and workflow: a run is a Job or a Workflow, "
        "never both",
    ]
    path.write_text(
        path.read_text().replace(
            "  - name: both\n    match: {cronjob: a, workflow: b}\n    deadline: '0 9 * * *'\n", ""
        )
    )
    assert cli.main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:4:13: batch 'train' matches a workflow, but Argo Workflows are not watched: "
        "set 'argo: {enabled: true}'",
    ]
    path.write_text("argo: {enabled: true}\n" + path.read_text())
    assert cli.main(["check-config", str(path)]) == 0
