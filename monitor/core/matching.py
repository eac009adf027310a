"""Which batches a run (or a pod's traceback) belongs to, without a nested loop.

A batch whose match names a `workflow` has Argo Workflows as runs; any other batch has
Jobs. Every batch is filed once, under one value that any run it matches must have:

- its Workflow family, its owner CronJob, its namespace, or one (key, value) of its
  labels, looked up by the run's own values;
- the literal prefix of an anchored `job_name` regex (`^recommend-daily-` files under
  `recommend-daily-`), looked up by cutting the Job's name at each prefix length in use.

Of a batch's possible keys the one shared by the fewest batches is used, so a lookup
checks only a few plausible candidates; each is then confirmed with `batch_matches`, so
results are exactly those of testing every batch. Batches with no usable key (an
unanchored regex alone) are checked for every Job.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.core.facts import RunKind
from monitor.core.regex import Pattern
from monitor.core.spec import BatchSpec

# The stdlib's regex parser: the reliable way to know what an anchored pattern must start with.
_sre_parser: Any = importlib.import_module("re._parser")
_sre: Any = importlib.import_module("re._constants")


@dataclass(frozen=True)
class JobIdentity:
    """What matching may look at: the same for a run and for a pod of that run.

    Anything with these attributes (a `JobSeen` itself, see `Identity`) matches alike.
    `workflows` are a Workflow's families (its CronWorkflow, its WorkflowTemplate).
    """

    namespace: str
    name: str
    cronjob: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: RunKind = "Job"
    workflows: tuple[str, ...] = ()


class Identity(Protocol):
    """What `BatchIndex.batches_for` reads of a run: a `JobIdentity` or a `JobSeen`."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def cronjob(self) -> str | None: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def kind(self) -> RunKind: ...
    @property
    def workflows(self) -> tuple[str, ...]: ...


def batch_matches(batch: BatchSpec, job: Identity) -> bool:
    """True when every field of the batch's `match` holds for the run."""
    match = batch.match
    if match.workflow is None:
        if job.kind != "Job":
            return False
    elif job.kind != "Workflow" or match.workflow not in job.workflows:
        return False
    if match.namespace is not None and match.namespace != job.namespace:
        return False
    if match.cronjob is not None and match.cronjob != job.cronjob:
        return False
    pattern = match.job_name_pattern
    if pattern is not None and pattern.search(job.name) is None:
        return False
    return not match.labels or all(
        job.labels.get(key) == value for key, value in match.labels.items()
    )


def literal_prefix(pattern: Pattern) -> str:
    """The text every string `pattern.search` accepts must start with ("" if none is known).

    Only a pattern anchored at the start (`^` without MULTILINE, or `\\A`) and matched
    case-sensitively has one: the literal characters right after the anchor. The pattern
    runs on RE2; its text is only analysed here, with Python's own parser, and anything
    that parser reads differently or not at all simply gets no prefix.
    """
    try:
        parsed = _sre_parser.parse(pattern.pattern, 0)
    except Exception:  # the parser is internal: if it changes, index without prefixes
        return ""
    if parsed.state.flags & (re.IGNORECASE | re.MULTILINE):
        return ""
    parsed = list(parsed)
    anchors = (_sre.AT_BEGINNING, _sre.AT_BEGINNING_STRING)
    if not parsed or parsed[0][0] is not _sre.AT or parsed[0][1] not in anchors:
        return ""
    prefix: list[str] = []
    for op, value in parsed[1:]:
        if op is not _sre.LITERAL:
            break
        prefix.append(chr(value))
    return "".join(prefix)


def _keys(batch: BatchSpec) -> list[tuple[str, ...]]:
    """Every value the index could file `batch` under, most specific kind first."""
    match = batch.match
    keys: list[tuple[str, ...]] = []
    if match.workflow is not None:
        keys.append(("workflow", match.workflow))
    if match.cronjob is not None:
        keys.append(("cronjob", match.cronjob))
    pattern = match.job_name_pattern
    prefix = literal_prefix(pattern) if pattern is not None else ""
    if prefix:
        keys.append(("prefix", prefix))
    if match.namespace is not None:
        keys.append(("namespace", match.namespace))
    keys.extend(("label", key, value) for key, value in sorted((match.labels or {}).items()))
    return keys


# (config position, batch, namespace, cronjob, name search, label pairs, workflow):
# `batch.match` unpacked once, so checking a candidate touches no model attribute.
_Entry = tuple[
    int,
    BatchSpec,
    str | None,
    str | None,
    Callable[[str], object | None] | None,
    tuple[tuple[str, str], ...],
    str | None,
]


def _entry(position: int, batch: BatchSpec) -> _Entry:
    match = batch.match
    pattern = match.job_name_pattern
    search = pattern.search if pattern is not None else None
    labels = tuple((match.labels or {}).items())
    return (position, batch, match.namespace, match.cronjob, search, labels, match.workflow)


class BatchIndex:
    """Batches indexed for fast matching; keeps config order in results."""

    def __init__(self, batches: Sequence[BatchSpec]) -> None:
        keyed = [(position, batch, _keys(batch)) for position, batch in enumerate(batches)]
        sharing = Counter(key for _, _, keys in keyed for key in keys)
        self._by_workflow: dict[str, list[_Entry]] = defaultdict(list)
        self._by_cronjob: dict[str, list[_Entry]] = defaultdict(list)
        self._by_namespace: dict[str, list[_Entry]] = defaultdict(list)
        self._by_label: dict[tuple[str, str], list[_Entry]] = defaultdict(list)
        self._by_prefix: dict[str, list[_Entry]] = defaultdict(list)
        self._scan: list[_Entry] = []
        for position, batch, keys in keyed:
            entry = _entry(position, batch)
            if not keys:
                self._scan.append(entry)
                continue
            kind, *value = min(keys, key=sharing.__getitem__)
            if kind == "workflow":
                self._by_workflow[value[0]].append(entry)
            elif kind == "cronjob":
                self._by_cronjob[value[0]].append(entry)
            elif kind == "prefix":
                self._by_prefix[value[0]].append(entry)
            elif kind == "namespace":
                self._by_namespace[value[0]].append(entry)
            else:
                self._by_label[(value[0], value[1])].append(entry)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._by_prefix})
        # When no batch looks at a run's name or labels, a run's batches depend only on its
        # namespace, kind and owners: remembered per owner (a relist asks for 100,000 Jobs).
        keyed_entries = [
            *self._by_workflow.values(),
            *self._by_cronjob.values(),
            *self._by_namespace.values(),
        ]
        self._by_owner: dict[_Owner, list[BatchSpec]] | None = (
            {}
            if not (self._by_prefix or self._by_label or self._scan)
            and all(e[4] is None and not e[5] for entries in keyed_entries for e in entries)
            else None
        )

    def batches_for(self, job: Identity) -> list[BatchSpec]:
        """Every batch the Job matches, in config order (the list must not be changed)."""
        memo = self._by_owner
        if memo is None:
            return self._match(job)
        owner = (job.namespace, job.cronjob, job.kind, job.workflows)
        found = memo.get(owner)
        if found is None:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            found = memo[owner] = self._match(job)
        return found

    def _match(self, job: Identity) -> list[BatchSpec]:
        candidates: list[_Entry] = []
        if self._by_workflow:
            for family in job.workflows:
                candidates += self._by_workflow.get(family, ())
        if job.cronjob is not None and self._by_cronjob:
            candidates += self._by_cronjob.get(job.cronjob, ())
        if self._by_namespace:
            candidates += self._by_namespace.get(job.namespace, ())
        if self._by_prefix:
            name = job.name
            for length in self._prefix_lengths:
                if length > len(name):
                    break
                candidates += self._by_prefix.get(name[:length], ())
        if self._by_label:
            for pair in job.labels.items():
                candidates += self._by_label.get(pair, ())
        candidates += self._scan
        found: list[tuple[int, BatchSpec]] = []
        namespace, cronjob, name, labels = job.namespace, job.cronjob, job.name, job.labels
        is_job, workflows = job.kind == "Job", job.workflows
        # The same tests as `batch_matches`, on the unpacked entry.
        for entry in candidates:
            position, batch, want_namespace, want_cronjob, search, want_labels, want_flow = entry
            if want_flow is None:
                if not is_job:
                    continue
            elif is_job or want_flow not in workflows:
                continue
            if want_namespace is not None and want_namespace != namespace:
                continue
            if want_cronjob is not None and want_cronjob != cronjob:
                continue
            if search is not None and search(name) is None:
                continue
            if want_labels and any(labels.get(key) != value for key, value in want_labels):
                continue
            found.append((position, batch))
        if len(found) > 1:
            found.sort(key=_position)
        return [batch for _, batch in found]


#: What a run's batches depend on when no batch looks at names or labels.
_Owner = tuple[str, str | None, str, tuple[str, ...]]

#: Distinct owners remembered before the memo starts over.
_MEMO_LIMIT = 200_000


def _position(found: tuple[int, BatchSpec]) -> int:
    return found[0]
