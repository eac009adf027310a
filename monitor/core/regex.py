"""User regexes run on RE2: linear time in the text, so no pattern can freeze the process.

Python's `re` backtracks: `^([a-z0-9]+-?)+-daily$` against a long hostile Job name holds
the interpreter lock for minutes, and with it `/healthz` and every deadline. RE2 (package
google-re2) guarantees time linear in the input; in exchange it has no backreferences or
look-around, and a pattern using them is a config error (reported at FILE:LINE:COL), never
silently run on `re` instead.
"""

from __future__ import annotations

from typing import Protocol, cast

import re2  # type: ignore[import-untyped]


class Pattern(Protocol):
    """What matching uses of a compiled pattern."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> object | None: ...


class RegexError(ValueError):
    """A pattern RE2 does not accept, with RE2's reason."""


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are reported to the user, not logged to stderr by RE2


def compile_pattern(text: str) -> Pattern:
    """`text` compiled by RE2 (raises `RegexError` with RE2's own reason)."""
    try:
        return cast(Pattern, re2.compile(text, _OPTIONS))
    except re2.error as error:
        reason = error.args[0] if error.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        if "invalid perl operator: (?=" in reason or "(?<" in reason or "\\1" in text:
            reason += " (RE2 runs in linear time: no backreferences or look-around)"
        raise RegexError(str(reason)) from None
