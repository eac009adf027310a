"""The status page in a real browser: headless Chromium loads `/` from a real StatusServer.

The server serves snapshots of real engines (the two scripted weeks of
docs/make_status_page.py, and the hostile scenario of test_web.py); Chromium (Debian's
`chromium` package; .ci/run installs it) renders the page with no script and dumps the DOM
it built, which is checked against `/api/status` from the same server. Skipped, saying so,
where Chromium is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from monitor.testing.wait import patient
from monitor.web.metrics import Metrics
from monitor.web.server import LatestStatus, StatusServer, StatusSnapshot
from tests.integration.test_web import (
    EVIL_RUN,
    HOSTILE,
    NOW,
    PageParser,
    assert_nothing_runs,
    fetch,
    parse_page,
    scenario_engine,
)

ROOT = Path(__file__).resolve().parents[2]
WINDOW = (1200, 900)
#: What a person reads for each state (SPEC's states; the page's own words).
STATE_WORDS = {
    "missed": "missed",
    "stale": "stale",
    "failing": "failing",
    "at_risk": "at risk",
    "running": "running",
    "due": "due soon",
    "ok": "ok",
    "silenced": "silenced",
}


def _docs_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_status_page", ROOT / "docs" / "make_status_page.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOCS = _docs_script()


@pytest.fixture
def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    return browser


@pytest.fixture
def status() -> Iterator[tuple[LatestStatus, str]]:
    published = LatestStatus()
    with StatusServer(published, Metrics(), host="127.0.0.1", port=0) as server:
        yield published, server.url


def render(chromium: str, url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The DOM Chromium built for `url` (and a screenshot of the window, when asked)."""
    command = [chromium, *DOCS.chromium_flags(str(profile)), "--dump-dom"]
    if screenshot is not None:
        command += [f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={screenshot}"]
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=patient(60), check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def expected_cell(run: dict[str, Any]) -> str:
    if run["outcome"] != "succeeded":
        return str(run["outcome"])
    return {True: "on time", False: "late", None: "succeeded"}[run["on_time"]]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_chromium_renders_each_batch_its_state_and_its_runs(
    chromium: str, status: tuple[LatestStatus, str], tmp_path: Path
) -> None:
    published, url = status
    published.publish(DOCS.example_snapshot())
    api = json.loads(fetch(url + "api/status").body)
    shot = tmp_path / "page.png"
    dom = render(chromium, url, tmp_path / "profile", screenshot=shot)
    parser = parse_page(dom)
    assert parser.title.startswith("sla-monitor: ")
    assert ("meta", {"http-equiv": "refresh", "content": "10"}) in parser.tags
    assert_nothing_runs(parser)
    rows = parser.batches()
    assert list(rows) == [
        *("user-embedding", "search-index", "ads-ctr-model", "ranking-daily", "ltv-forecast"),
        *("recommend-daily", "churn-daily", "feature-refresh", "weekly-report"),
    ]
    assert {b["name"] for b in api["batches"]} == set(rows)
    kinds_seen: set[str] = set()
    for batch in api["batches"]:
        row = rows[batch["name"]]
        assert row.cells[1] == STATE_WORDS[batch["state"]], batch["name"]
        # Oldest on the left, newest on the right; each cell labelled in words.
        expected = [expected_cell(run) for run in reversed(batch["runs"])]
        assert [cell["kind"] for cell in row.runs] == expected, batch["name"]
        assert [cell["label"].split(":")[0] for cell in row.runs] == expected
        assert all(cell["title"] == cell["label"] for cell in row.runs)
        kinds_seen.update(expected)
        assert (batch["open_alerts"] != []) == ("open" in row.classes)
    assert kinds_seen == {"on time", "late", "failed", "running", "succeeded"}
    assert len(rows["feature-refresh"].runs) == 20
    assert (
        rows["weekly-report"].cells[0]
        == "weekly-report At 06:00, only on Monday (America/New_York)"
    )
    assert rows["weekly-report"].cells[5].startswith("2026-11-23 05:42:00 EST ")
    assert rows["ltv-forecast"].cells[0].startswith("ltv-forecast At 10:00, Monday through Friday")
    assert png_size(shot) == WINDOW


def test_chromium_shows_hostile_text_as_text_and_runs_nothing(
    chromium: str, status: tuple[LatestStatus, str], tmp_path: Path
) -> None:
    published, url = status
    engine = scenario_engine()
    published.publish(
        StatusSnapshot.from_engine(engine, leader=True, synced=True, generated_at=NOW)
    )
    parser: PageParser = parse_page(render(chromium, url, tmp_path / "profile"))
    assert_nothing_runs(parser)
    rows = parser.batches()
    assert HOSTILE in rows
    assert rows[HOSTILE].cells[1] == "missed"
    [run] = rows[HOSTILE].runs
    assert run["title"].startswith(f"failed: {EVIL_RUN} (")
    sources = {row.cells[0]: row.cells[4] for row in parser.of_kind("source")}
    assert sources["cloud_logging"] == "<b>429</b> quota"
