"""The traceback grouper on real Python output: plain, chained, interleaved, truncated."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from monitor.core.tracebacks import (
    MAX_LINE_CHARS,
    MAX_TRACEBACK_LINES,
    GrouperState,
    LogLine,
    TracebackGrouper,
    find_tracebacks,
    message_lines,
)

T0 = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def python_stderr(source: str) -> str:
    """What a real interpreter prints for `source` (so the fixtures are not invented)."""
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    return result.stderr


def timed(text: str, start: datetime = T0) -> list[LogLine]:
    return [
        LogLine(start + timedelta(milliseconds=index), line)
        for index, line in enumerate(text.splitlines())
    ]


def test_plain_traceback_reports_first_and_final_line() -> None:
    stderr = python_stderr("import json\njson.loads('{')")
    [found] = find_tracebacks(timed(stderr))
    assert found.first_line == "Traceback (most recent call last):"
    assert found.final_line.startswith("json.decoder.JSONDecodeError: Expecting property name")
    assert found.complete
    assert found.time == T0


def test_chained_traceback_reports_the_last_final_line() -> None:
    stderr = python_stderr(
        "try:\n    1/0\nexcept ZeroDivisionError:\n    raise KeyError('missing')\n"
    )
    assert "During handling of the above exception" in stderr
    [found] = find_tracebacks(timed(stderr))
    assert found.final_line == "KeyError: 'missing'"
    assert found.time == T0


def test_explicit_cause_chain_is_one_traceback() -> None:
    stderr = python_stderr(
        "try:\n    1/0\nexcept ZeroDivisionError as e:\n    raise RuntimeError('boom') from e\n"
    )
    assert "direct cause" in stderr
    found = find_tracebacks(timed(stderr))
    assert [tb.final_line for tb in found] == ["RuntimeError: boom"]


def test_two_separate_tracebacks_with_output_between() -> None:
    one = python_stderr("raise ValueError('first')")
    two = python_stderr("raise TypeError('second')")
    lines = timed(one + "retrying in 5s\n" + two)
    found = find_tracebacks(lines)
    assert [tb.final_line for tb in found] == ["ValueError: first", "TypeError: second"]
    assert found[1].time > found[0].time


def test_back_to_back_tracebacks_without_separator() -> None:
    text = python_stderr("raise ValueError('a')") + python_stderr("raise OSError('b')")
    found = find_tracebacks(timed(text))
    assert [tb.final_line for tb in found] == ["ValueError: a", "OSError: b"]


def test_traceback_cut_off_is_incomplete_with_last_line() -> None:
    lines = timed('Traceback (most recent call last):\n  File "job.py", line 3, in <module>')
    [found] = find_tracebacks(lines)
    assert not found.complete
    assert found.final_line == 'File "job.py", line 3, in <module>'


def test_streaming_state_waits_for_possible_chain() -> None:
    grouper = TracebackGrouper()
    emitted = []
    for line in timed(python_stderr("raise ValueError('x')")):
        emitted.extend(grouper.feed(line))
    assert emitted == []
    assert grouper.state is GrouperState.FINAL
    assert grouper.opened_at == T0
    [found] = grouper.finish()
    assert found.final_line == "ValueError: x"
    assert grouper.state is GrouperState.IDLE


def test_whole_message_with_logger_prefix_line() -> None:
    message = "ERROR:root:job failed\n" + python_stderr("raise ValueError('in message')")
    [found] = find_tracebacks(message_lines(T0, message))
    assert found.final_line == "ValueError: in message"


def test_huge_lines_and_endless_frames_are_bounded() -> None:
    huge = "E" * 10_000_000
    [found] = find_tracebacks(timed(f"Traceback (most recent call last):\n  x\n{huge}: boom"))
    assert len(found.final_line) == MAX_LINE_CHARS
    frames = "Traceback (most recent call last):\n" + "  frame\n" * (MAX_TRACEBACK_LINES * 3)
    found_frames = find_tracebacks(timed(frames))
    assert len(found_frames) == 1
    assert not found_frames[0].complete


def test_lines_without_traceback_yield_nothing() -> None:
    assert find_tracebacks(timed("starting\nValueError: not a traceback\n  indented\n")) == []


def test_exception_group_reports_the_group_line() -> None:
    stderr = python_stderr("raise ExceptionGroup('batch failed', [ValueError('a'), KeyError('b')])")
    found = find_tracebacks(timed(stderr + "next log line\n"))
    assert [tb.final_line for tb in found] == ["ExceptionGroup: batch failed (2 sub-exceptions)"]
    assert found[0].first_line == "+ Exception Group Traceback (most recent call last):"
