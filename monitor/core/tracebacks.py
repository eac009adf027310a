"""Find Python tracebacks in a container's log lines, one traceback per group of lines.

Log pipelines hand us a traceback either whole (one message with newlines) or one line
at a time (GKE writes one entry per stdout line). `TracebackGrouper` is a small state
machine fed one container's lines in order: it opens at `Traceback (most recent call
last):`, skips the indented frame lines, takes the first non-indented line as the final
exception line, and follows chained tracebacks ("During handling of the above
exception..." / "The above exception was the direct cause...") so that the *last* final
line is reported. Memory is bounded: lines are cut to `MAX_LINE_CHARS`, messages to
`MAX_MESSAGE_CHARS`, and a traceback longer than `MAX_TRACEBACK_LINES` is closed as
incomplete. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

TRACEBACK_MARKER = "Traceback (most recent call last):"
CHAIN_MARKERS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
MAX_LINE_CHARS = 2_000
MAX_MESSAGE_CHARS = 256 * 1024  # Cloud Logging's own cap on one entry
MAX_TRACEBACK_LINES = 1_000


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a container's output and the time it was written."""

    time: datetime
    text: str


@dataclass(frozen=True, slots=True)
class Traceback:
    """A grouped traceback. `time` is when its first `Traceback` line was written.

    `complete` is False when the lines ended (or the bound was hit) before any final
    exception line; `final_line` is then the last line seen, the best clue left.
    """

    time: datetime
    first_line: str
    final_line: str
    last_time: datetime
    complete: bool


class GrouperState(Enum):
    IDLE = "idle"  # outside any traceback
    FRAMES = "frames"  # inside a traceback, no final line yet
    FINAL = "final"  # final line seen; a chained traceback may still follow
    CHAINED = "chained"  # a chain marker seen; expecting the next `Traceback` line


def clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """Cut untrusted text to `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TracebackGrouper:
    """Groups one container's lines, fed in time order, into tracebacks."""

    def __init__(self) -> None:
        self._state = GrouperState.IDLE
        self._time: datetime | None = None
        self._first_line = ""
        self._final_line = ""
        self._last_line = ""
        self._last_time: datetime | None = None
        self._lines = 0
        self._group = False  # an exception group: its lines are drawn with "|" and "+"

    @property
    def state(self) -> GrouperState:
        return self._state

    @property
    def last_time(self) -> datetime | None:
        """Time of the last line that belonged to the open traceback (None when idle)."""
        return self._last_time if self._state is not GrouperState.IDLE else None

    @property
    def opened_at(self) -> datetime | None:
        """Time of the open traceback's first line (None when idle)."""
        return self._time if self._state is not GrouperState.IDLE else None

    def feed(self, line: LogLine) -> list[Traceback]:
        """Consume one line; return the tracebacks it completed (usually none)."""
        text = clip(line.text.rstrip("\r\n"))
        stripped = text.strip()
        done: list[Traceback] = []
        if self._state is GrouperState.IDLE:
            if TRACEBACK_MARKER in text:
                self._open(line.time, stripped)
            return done
        if not stripped:
            return done
        self._lines += 1
        if self._group and text[0].isspace():
            self._feed_group_line(line.time, stripped)
        elif self._state is GrouperState.CHAINED and TRACEBACK_MARKER in text:
            self._state = GrouperState.FRAMES
            self._touch(line.time, stripped)
        elif TRACEBACK_MARKER in text:
            done.append(self._close())
            self._open(line.time, stripped)
        elif self._state is GrouperState.FRAMES:
            if text[0].isspace():
                self._touch(line.time, stripped)
            else:
                self._final_line = stripped
                self._state = GrouperState.FINAL
                self._touch(line.time, stripped)
        elif self._state is GrouperState.FINAL and stripped in CHAIN_MARKERS:
            self._state = GrouperState.CHAINED
            self._touch(line.time, stripped)
        elif self._state is GrouperState.FINAL and text[0].isspace():
            self._touch(line.time, stripped)  # notes/continuations after the final line
        else:
            done.append(self._close())
        if self._state is not GrouperState.IDLE and self._lines >= MAX_TRACEBACK_LINES:
            done.append(self._close())
        return done

    def finish(self) -> list[Traceback]:
        """The lines ended: close the open traceback, if any."""
        return [self._close()] if self._state is not GrouperState.IDLE else []

    def _feed_group_line(self, time: datetime, stripped: str) -> None:
        """Inside a group every line is indented; the group's own `| Error: …` is final."""
        content = stripped[1:] if stripped.startswith("|") else ""
        if self._state is GrouperState.FRAMES and content[:1] == " " and content[1:2].strip():
            self._final_line = content.strip()
            self._state = GrouperState.FINAL
        self._touch(time, stripped)

    def _open(self, time: datetime, first_line: str) -> None:
        self._group = first_line.startswith("+")
        self._state = GrouperState.FRAMES
        self._time = time
        self._first_line = first_line
        self._final_line = ""
        self._lines = 1
        self._touch(time, first_line)

    def _touch(self, time: datetime, text: str) -> None:
        self._last_line = text
        self._last_time = time

    def _close(self) -> Traceback:
        assert self._time is not None
        assert self._last_time is not None
        complete = bool(self._final_line)
        traceback = Traceback(
            time=self._time,
            first_line=self._first_line,
            final_line=self._final_line if complete else self._last_line,
            last_time=self._last_time,
            complete=complete,
        )
        self._state = GrouperState.IDLE
        return traceback


def message_lines(time: datetime, message: str) -> list[LogLine]:
    """Split one log message (bounded to MAX_MESSAGE_CHARS) into lines sharing its time."""
    return [LogLine(time, text) for text in message[:MAX_MESSAGE_CHARS].splitlines()]


def find_tracebacks(lines: Iterable[LogLine]) -> list[Traceback]:
    """Every traceback in a finished sequence of lines (a whole message or pod log)."""
    grouper = TracebackGrouper()
    found: list[Traceback] = []
    for line in lines:
        found.extend(grouper.feed(line))
    found.extend(grouper.finish())
    return found
