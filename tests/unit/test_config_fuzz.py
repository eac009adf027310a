"""check-config under fuzzing: whatever the input, exit 0 or 1 and FILE:LINE:COL lines.

Two sources of input: YAML built from the config's own keys and value kinds (durations,
crons, timezones, calendars, silences…) with random values, anchors, aliases, merge keys
and tags mixed in; and raw bytes, random or mutated from the example config. Each input
is checked in-process through `cli.main(["check-config", FILE])`, the function the
command runs, with its output captured. The property (SPEC "Config"): the exit code is 0
or 1; on 0 nothing is printed to stderr; on 1 every stderr line is `FILE:LINE:COL: message`
with FILE as given; never a traceback; every input is judged in well under a second.

Inputs that used to crash or stall check-config are kept below (`FOUND`), each checked
in-process for its message, and all at once through the real command in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import cli
from monitor.config.load import ConfigError, _load
from monitor.config.model import Config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "config" / "sla.yaml").read_bytes()

#: CPU seconds one input may take. CPU, not wall time: on a shared two-core machine the
#: wall clock measures the neighbours too. Typical inputs take a few milliseconds.
PER_CASE = 1.0
FUZZ = settings(
    max_examples=250,
    deadline=None,  # the bound is PER_CASE, measured per input below
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check_config(path: Path) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, CPU seconds) of `check-config PATH`, in this process."""
    out, err = io.StringIO(), io.StringIO()
    started = time.process_time()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["check-config", str(path)])
    return code, out.getvalue(), err.getvalue(), time.process_time() - started


def loaded(path: Path, *, located: bool) -> Config | None:
    """The config one reading makes of `path` (None: refused)."""
    try:
        return _load(path, located=located)
    except ConfigError:
        return None


def assert_judged(path: Path) -> None:
    """The property, for one file or directory."""
    code, out, err, spent = check_config(path)
    assert code in (0, 1), (code, out, err)
    assert spent < PER_CASE, f"{spent:.2f} s of CPU"
    assert "Traceback" not in out + err
    # A good config is read once, without positions (its batches composed one at a time);
    # only a refused one is read again with them, composed whole. Both readings must refuse
    # exactly the same inputs, and make the same config of the others.
    quick = loaded(path, located=False)
    assert quick == loaded(path, located=True)
    assert (quick is not None) is (code == 0)
    if code == 0:
        assert err == "", err
        assert re.fullmatch(rf"{re.escape(str(path))}: OK \(\d+ batches\)\n", out), out
        return
    assert out == ""
    lines = err.splitlines()
    assert lines, "exit 1 with no error printed"
    shape = re.compile(rf"{re.escape(str(path))}(/[^/:]+)?:\d+:\d+: \S")
    for line in lines:
        assert shape.match(line), line


# --- YAML made of the config's own vocabulary -----------------------------------------

#: For each kind of mapping the keys it has, and the kind of each key's value.
SHAPES: dict[str, dict[str, str]] = {
    "config": {
        "timezone": "timezone",
        "slack": "slack",
        "kubernetes": "kubernetes",
        "argo": "argo",
        "cloud_logging": "cloud_logging",
        "state": "state",
        "health": "health",
        "calendars": "calendars",
        "silences": "silences",
        "batches": "batches",
        "unmatched": "unmatched",
    },
    "slack": {
        "channel": "channel",
        "errors_channel": "channel",
        "token_env": "word",
        "token_file": "word",
        "remind": "grace",
        "storm": "storm",
    },
    "storm": {"threshold": "count", "window": "duration"},
    "kubernetes": {"namespaces": "words", "pod_logs": "bool"},
    "argo": {"enabled": "bool"},
    "cloud_logging": {
        "project": "word",
        "cluster": "word",
        "poll_interval": "duration",
        "events": "bool",
        "endpoint": "word",
    },
    "state": {"configmap": "word", "file": "word"},
    "health": {"degraded_after": "duration"},
    "calendar": {
        "weekends": "weekdays",
        "extra_holidays": "dates",
        "extra_working_days": "dates",
    },
    "silence": {"batches": "silenced", "from": "from", "until": "until", "reason": "word"},
    "batch": {
        "name": "batch_name",
        "match": "match",
        "deadline": "cron",
        "freshness": "duration",
        "window": "duration",
        "grace": "grace",
        "timezone": "timezone",
        "calendar": "calendar_name",
        "max_runtime": "duration",
        "at_risk": "bool",
        "slack": "route",
        "notify": "notify",
    },
    "match": {
        "namespace": "word",
        "cronjob": "word",
        "job_name": "regex",
        "labels": "labels",
        "workflow": "word",
    },
    "route": {"channel": "channel", "errors_channel": "channel", "mention": "word"},
    "notify": {"job_failed": "bool", "traceback": "bool"},
    "unmatched": {"notify": "notify", "slack": "route"},
}
#: Keys a mapping of that kind needs (the fuzzer leaves one out now and then).
REQUIRED = {
    "config": ["slack", "batches"],
    "slack": ["channel"],
    "batch": ["name", "match", "deadline"],
    "match": ["cronjob"],
    "cloud_logging": ["project"],
    "silence": ["batches", "from", "until"],
}
#: Keys that make an otherwise valid config invalid (a workflow needs argo.enabled and
#: no cronjob); only noisy documents use them.
RARE = {"workflow", "errors_channel", "file"}
LISTS = {
    "batches": "batch",
    "silences": "silence",
    "words": "word",
    "silenced": "silenced_name",
    "weekdays": "weekday",
    "dates": "date",
}

#: Scalar texts by kind: valid ones, near misses, and the extremes that broke things.
SCALARS: dict[str, list[str]] = {
    "duration": [
        "5m",
        "90s",
        "1d",
        "366d",
        "0",
        "0s",
        "367d",
        "1ms",
        "500ms",
        "2w",
        "5",
        "1.5",
        "-5m",
        "5 m",
        "99999999d",
        "9" * 40 + "s",
        "1h30m",
        "five minutes",
        "1e3s",
        "0x10",
    ],
    "grace": ["5m", "0", "0s", "1d", "1ms", "367d", "5", "-1s", "9" * 40 + "s"],
    "cron": [
        '"0 9 * * *"',
        '"30 0 7 * * MON-FRI"',
        '"* * * * * *"',
        '"*/10 * * * * *"',
        '"0 9 * * SAT"',
        '"0 0 L 2 *"',
        '"0 9 1 1 *"',
        '"0 0 1W * *"',
        '"0 0 29 2 MON"',
        '"0 0 29 2 *"',
        '"0 0 30 2 *"',
        '"0 0 * 2 1#5"',
        '"61 9 * * *"',
        '"@daily"',
        '"0 9 * * * 30"',
        '"H 0 * * *"',
        '"0 9 * * 5L"',
        '"0 0 31 4 *"',
        '"0 0 ? * *"',
        '"0 0 1-31/2 * *"',
        '"0 0 * * 7"',
        '"' + ",".join(["1"] * 120) + ' * * * *"',
    ],
    "timezone": [
        "UTC",
        "Asia/Tokyo",
        "America/New_York",
        "asia/tokyo",
        "Nowhere",
        "Etc/GMT+14",
        "../../etc/passwd",
        "/etc/localtime",
        '"' + "Asia/" * 80 + 'Tokyo"',
        '"UTC\\0"',
        "''",
        "1:" + "1" * 300,
    ],
    "date": [
        "2026-12-31",
        '"2026-12-31"',
        "2026-13-45",
        "2026-02-30",
        "0001-01-01",
        "9999-12-31",
        "2199-12-31",
        "2200-01-01",
        "1999-12-31",
        "26-1-1",
        "2026-1-1",
    ],
    "from": [
        '"2026-12-29T00:00:00+09:00"',
        "2026-12-29T00:00:00+09:00",
        "2026-12-29T00:00:00",
        '"9999-12-31T23:59:59-12:00"',
        '"0001-01-01T00:00:00+14:00"',
        "2026-12-29",
        '"2027-01-04T00:00:00Z"',
        "2026-12-29 00:00:00 +9",
    ],
    "until": ['"2027-01-04T00:00:00Z"', "2027-01-04T00:00:00+09:00", '"2026-12-28T00:00:00Z"'],
    "batch_name": ["b0", "b1", "b2", "b3", "with space", "a@b", "''", '"' + "b" * 201 + '"'],
    "silenced_name": ['"*"', "b9", "b0"],
    "regex": [
        '"^recommend-"',
        '"(a"',
        '"^(a)\\\\1$"',
        '"(?=x)"',
        '"a{1001}"',
        '"((a{100}){100}){100}"',
        '"\\\\p{Greek}+"',
        '"[z-a]"',
        '"' + "(" * 300 + ")" * 300 + '"',
    ],
    "weekday": ["sat", "sun", "mon", "fri", "saturday", "SUN", "7", "~"],
    "calendar_name": ["jp", "jp", "weekdays", "weekdays", "x"],
    "channel": ['"#alerts"', '"#a"', "C0123", '"#' + "x" * 200 + '"', "''"],
    "count": ["1", "10", "0", "-1", "10001", "1e9", "0x7fffffff", "1_000", "9" * 5000],
    "bool": ["true", "false", "yes", "no", "on", "off", "1", "True", "~"],
    "word": [
        "ml-batch",
        "recommend-daily",
        "a",
        "b",
        "ml",
        "ml_batch",
        "ML",
        "monitoring/sla-state",
        '"*"',
        "''",
        '"' + "x" * 300 + '"',
        "/var/lib/state.json",
        "http://127.0.0.1:9",
    ],
}
#: How many of each kind's texts above (the first ones) are valid where that kind goes.
VALID = {
    "duration": 4,
    "grace": 4,
    "from": 2,
    "until": 2,
    "batch_name": 4,
    "silenced_name": 1,
    "cron": 9,
    "timezone": 3,
    "date": 2,
    "regex": 1,
    "weekday": 4,
    "calendar_name": 5,
    "channel": 3,
    "count": 2,
    "bool": 4,
    "word": 5,
}
ANY_SCALAR = [
    "~",
    "null",
    "''",
    "true",
    "0",
    "-0",
    "1e400",
    ".inf",
    "-.inf",
    ".nan",
    "0o17",
    "0x" + "F" * 5000,
    "1" * 5000,
    "1:" + "1" * 5000,
    "12:30:00",
    "2026-13-45",
    "2026-01-01T25:00:00",
    "!!binary aGVsbG8=",
    "!!binary '@@@'",
    "!!float abc",
    "!!int abc",
    "!!int 1_0",
    "!!timestamp 2026-02-30",
    "!!bool maybe",
    "!!null x",
    "!!str 5",
    "!custom x",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system ''",
    '"\\ud800"',
    '"\\U0010FFFF"',
    '"\\x00"',
    '"a\\nb"',
    "'it''s'",
    "|\n  block\n",
    ">-\n  folded\n",
]
ODD_KEYS = ["grase", "1", "true", "~", "2026-01-01", "[a]", "? x", '"a\\nb"', "<<"]
COLLECTION_TAGS = ["!!set", "!!omap", "!!pairs", "!!map", "!!seq", "!custom", "!!python/tuple"]
#: Free text, written as a double-quoted YAML scalar (JSON's escapes are YAML's too).
TEXTS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


class _Document:
    """YAML text drawn node by node in document order, so aliases only name earlier anchors."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.anchors: list[str] = []
        self.kinds: dict[str, str] = {}  # the kind of value each anchor names
        self.open: set[str] = set()  # anchors of nodes still being drawn
        #: In ten, how often a value is odd: 0 makes configs that are mostly valid, so
        #: the checks that run only on an otherwise valid config are reached too.
        self.noise = draw(st.sampled_from([0, 0, 1, 4]))

    def odd(self, one_in: int = 1) -> bool:
        return self.noise > 0 and self.draw(st.integers(0, 10 * one_in - 1)) < self.noise

    def anchor(self) -> str:
        if self.draw(st.integers(0, 9)) != 0:
            return ""
        name = f"a{len(self.anchors)}"
        self.anchors.append(name)
        self.open.add(name)
        return f"&{name} "

    def alias(self, kind: str) -> str | None:
        """An alias of an earlier node: of the same kind, unless odd (even recursive)."""
        if self.odd(3):
            names = self.anchors
        else:
            names = [name for name in self.anchors if self.kinds[name] == kind]
            names = [name for name in names if name not in self.open]
        if not names or self.draw(st.integers(0, 5)) != 0:
            return None
        return "*" + self.draw(st.sampled_from(names))

    def scalar(self, kind: str) -> str:
        texts = SCALARS.get(kind, SCALARS["word"])
        if not self.odd():
            return self.draw(st.sampled_from(texts[: VALID.get(kind, len(texts))]))
        choice = self.draw(st.integers(0, 3))
        if choice == 0:
            return self.draw(st.sampled_from(ANY_SCALAR))
        if choice == 1:
            return json.dumps(self.draw(TEXTS), ensure_ascii=self.draw(st.booleans()))
        return self.draw(st.sampled_from(texts))

    def value(self, kind: str, depth: int) -> str:
        alias = self.alias(kind)
        if alias is not None:
            return alias
        if depth > 4 or self.odd(2):  # anything, anywhere
            kind = self.draw(st.sampled_from([*SCALARS, "any-map", "any-list"]))
        anchor = self.anchor()
        if anchor:
            self.kinds[anchor[1:-1]] = kind
        try:
            return anchor + self.node(kind, depth)
        finally:
            self.open.discard(anchor[1:-1])

    def node(self, kind: str, depth: int) -> str:
        tag = f"{self.draw(st.sampled_from(COLLECTION_TAGS))} " if self.odd(3) else ""
        if kind in SHAPES or kind == "any-map":
            return tag + self.mapping(kind, depth)
        if kind in LISTS or kind == "any-list":
            item = LISTS.get(kind, "word")
            items = [self.value(item, depth + 1) for _ in range(self.draw(st.integers(0, 4)))]
            return tag + "[" + ", ".join(items) + "]"
        if kind in {"calendars", "labels"}:
            item, key = ("calendar", "calendar_name") if kind == "calendars" else ("word", "word")
            names = self.draw(st.lists(st.sampled_from(SCALARS[key]), unique=True, max_size=3))
            pairs = [f"{name}: {self.value(item, depth + 1)}" for name in names]
            return "{" + ", ".join(pairs) + "}"
        text = self.scalar(kind)
        if text.startswith(("|", ">")):  # block scalars only fit in block context
            text = json.dumps(text)
        return text

    def keys(self, kind: str) -> list[str]:
        """Mostly what a valid mapping of `kind` could hold: its required keys, no repeats."""
        keys = list(SHAPES.get(kind, SHAPES["batch"]))
        if self.odd():
            return self.draw(st.lists(st.sampled_from(keys), max_size=len(keys)))
        required = [key for key in REQUIRED.get(kind, []) if not self.odd()]
        rare = set(RARE)
        if kind == "batch" and self.draw(st.booleans()):  # a freshness batch
            required = [key if key != "deadline" else "freshness" for key in required]
            rare |= {"deadline", "window", "grace", "calendar"}
        elif kind == "batch":
            rare.add("freshness")
        optional = [key for key in keys if key not in required and key not in rare]
        optional += [key for key in keys if key in rare and self.odd()]
        chosen = self.draw(st.lists(st.sampled_from(optional), unique=True, max_size=4))
        return self.draw(st.permutations(required + chosen))

    def mapping(self, kind: str, depth: int) -> str:
        chosen = self.keys(kind)
        earlier = list(self.anchors)  # what a merge key here may name
        pairs = []
        for key in chosen:
            if self.odd(2):  # a misspelt, odd or non-text key
                key = self.draw(st.sampled_from(ODD_KEYS))
            pairs.append(f"{key}: {self.value(SHAPES.get(kind, {}).get(key, 'word'), depth + 1)}")
        if not self.odd(2):  # merge only mappings of the same kind
            earlier = [name for name in earlier if self.kinds[name] == kind]
        if earlier and self.draw(st.integers(0, 4)) == 0:
            merged = self.draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=12))
            sources = ", ".join(f"*{name}" for name in merged)
            pairs.insert(self.draw(st.integers(0, len(pairs))), f"<<: [{sources}]")
        return "{" + ", ".join(pairs) + "}"


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """A config file: a block mapping of top-level keys with flow values."""
    document = _Document(draw)
    lines = []
    for key in document.keys("config"):
        lines.append(f"{key}: {document.value(SHAPES['config'][key], 0)}")
    head = tail = ""
    if document.odd():
        head = draw(st.sampled_from(["%YAML 1.1\n---\n", "\ufeff", "# c\n", "---\n", " "]))
        tail = draw(st.sampled_from(["\n...\n", "\n---\nx: 1\n", "\n# end", "\t", ":"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return head + newline.join(lines) + tail


@st.composite
def mutated_example(draw: st.DrawFn) -> bytes:
    """The example config with a few bytes inserted, replaced or removed."""
    data = bytearray(EXAMPLE)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "replace", "delete"]))
        chunk = draw(
            st.binary(min_size=1, max_size=4)
            | st.sampled_from([b"*", b"&a ", b"<<: ", b"!!", b"[", b"{", b"\t", b"\x00", b"\xff"])
        )
        if edit == "insert":
            data[at:at] = chunk
        elif edit == "replace":
            data[at : at + len(chunk)] = chunk
        else:
            del data[at : at + draw(st.integers(1, 20))]
    return bytes(data)


@FUZZ
@given(text=config_texts())
def test_config_shaped_yaml_is_always_judged(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert_judged(path)


@FUZZ
@given(raw=st.binary(max_size=2000) | mutated_example())
def test_any_bytes_are_always_judged(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "sla.yaml"
    path.write_bytes(raw)
    assert_judged(path)


# --- what the fuzzing found ------------------------------------------------------------

#: Inputs that crashed check-config (a traceback) or stalled it, with the start of the
#: line each now gets (LINE:COL: message).
FOUND: dict[str, tuple[str, str]] = {
    "impossible_date.yaml": ("timezone: 2026-13-45\n", "1:11: invalid date '2026-13-45'"),
    "long_integer.yaml": (
        "health: {degraded_after: " + "1" * 5000 + "}\n",
        "1:26: invalid integer",
    ),
    "hex_integer.yaml": (
        "state: {file: 0x" + "F" * 5000 + "}\n",
        "1:15: expected a string, got a very large number",
    ),
    "tagged_float.yaml": ("slack: {channel: !!float abc}\n", "1:18: invalid number 'abc'"),
    "long_timezone.yaml": (
        "batches: [{name: a, match: {cronjob: a}, freshness: 1h, timezone: " + "a" * 300 + "}]\n",
        "1:67: unknown IANA timezone",
    ),
    "control_character.yaml": ('cloud_logging: "\x7f"\n', "1:17: invalid YAML: character U+007F"),
    "deep_nesting.yaml": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "1:1003: nested too deeply"),
    "recursive_merge.yaml": ("kubernetes: &k {<<: *k}\n", "1:13: recursive alias"),
    "merge_bomb.yaml": (
        "a0: &a0 {}\n"
        + "".join(
            f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}]}}\n" for i in range(1, 12)
        ),
        "6:10: document too large",
    ),
    "list_key.yaml": ("? [a, b]\n: 1\n", "1:3: a key must be text, not a list"),
    "tagged_boolean.yaml": ("argo: {enabled: !!bool maybe}\n", "1:17: invalid boolean 'maybe'"),
    "tagged_empty_integer.yaml": (
        "unmatched: {notify: {traceback: !!int ''}}\n",
        "1:33: invalid integer ''",
    ),
    "tagged_timestamp.yaml": (
        "silences: [{batches: ['*'], from: !!timestamp abc, until: 2027-01-01T00:00:00Z}]\n",
        "1:35: invalid date 'abc'",
    ),
}


def _found_files(directory: Path) -> list[Path]:
    paths = []
    for name, (text, _) in FOUND.items():
        paths.append(directory / name)
        paths[-1].write_text(text, encoding="utf-8")
    return paths


@pytest.mark.parametrize("name", sorted(FOUND))
def test_what_fuzzing_found_is_reported_in_place(tmp_path: Path, name: str) -> None:
    (path,) = [path for path in _found_files(tmp_path) if path.name == name]
    assert_judged(path)
    _, _, err, _ = check_config(path)
    assert any(line.startswith(f"{path}:{FOUND[name][1]}") for line in err.splitlines()), err


def test_what_fuzzing_found_through_the_real_command(tmp_path: Path) -> None:
    """One run of the installed command over all of them (a directory of files)."""
    _found_files(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (run.returncode, run.stdout) == (1, ""), run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    for line in lines:
        assert re.match(rf"{re.escape(str(tmp_path))}/[\w.]+:\d+:\d+: \S", line), line
    for name, (_, start) in FOUND.items():
        assert any(line.startswith(f"{tmp_path}/{name}:{start}") for line in lines), name
