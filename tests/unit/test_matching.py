"""BatchIndex finds exactly the batches a brute-force scan finds, in config order."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from monitor.config.model import Batch
from monitor.core.matching import BatchIndex, JobIdentity, batch_matches, literal_prefix

BATCH = TypeAdapter(Batch)

NAME_PIECES = ["ab", "AB", "a", "c", "-", ".", "\n"]
PATTERNS = [
    "^ab",
    "^a",
    "^abc-",
    "^ab-c",
    "b",
    "ab$",
    "^a.c",
    "^(ab)c",
    "^ab|c",
    "^a*b",
    "^ab?",
    "^a{2}",
    "^[ab]c",
    r"\Aab",
    r"^a\.b",
    "^",
    "^$",
    "(?i)^AB",
    "(?i)^ab",
    "(?m)^ab",
    "(?m)^a",
    "(?im)^ab",
    r"^\Qa.b\E",  # RE2's literal quoting: Python's parser cannot read it, so no prefix
    "(?s)^a.b",
    "^(?i:a)b",
]

names = st.lists(st.sampled_from(NAME_PIECES), max_size=4).map("".join)
prefixes = st.lists(st.sampled_from(NAME_PIECES), min_size=1, max_size=3).map(
    lambda pieces: "^" + re.escape("".join(pieces))
)
patterns = st.one_of(st.sampled_from(PATTERNS), prefixes, prefixes.map(lambda p: p + ".*x"))
label_maps = st.dictionaries(st.sampled_from(["k1", "k2"]), st.sampled_from(["v1", "v2"]))
matches = st.fixed_dictionaries(
    {},
    optional={
        "namespace": st.sampled_from(["n1", "n2"]),
        "cronjob": st.sampled_from(["c1", "c2"]),
        "job_name": patterns,
        "labels": st.dictionaries(
            st.sampled_from(["k1", "k2"]), st.sampled_from(["v1", "v2"]), min_size=1
        ),
    },
).filter(lambda match: len(match) > 0)
jobs = st.builds(
    JobIdentity,
    namespace=st.sampled_from(["n1", "n2"]),
    name=names,
    cronjob=st.sampled_from([None, "c1", "c2"]),
    labels=label_maps,
)


def _batches(match_list: list[dict[str, Any]]) -> list[Batch]:
    return [
        BATCH.validate_python({"name": f"b{index}", "freshness": "1h", "match": match})
        for index, match in enumerate(match_list)
    ]


def _near(match: dict[str, Any], name: str, extra: dict[str, str]) -> JobIdentity:
    """A Job that meets every field of `match` except, perhaps, its name pattern."""
    return JobIdentity(
        namespace=match.get("namespace", "n1"),
        name=name,
        cronjob=match.get("cronjob"),
        labels={**extra, **match.get("labels", {})},
    )


@settings(max_examples=300, deadline=None)
@given(
    match_list=st.lists(matches, min_size=1, max_size=25),
    job_list=st.lists(jobs, max_size=10),
    data=st.data(),
)
def test_the_index_agrees_with_testing_every_batch(
    match_list: list[dict[str, Any]], job_list: list[JobIdentity], data: st.DataObject
) -> None:
    batches = _batches(match_list)
    index = BatchIndex(batches)
    # Jobs close to some batch, so that name patterns decide: where mistakes would hide.
    near = [
        _near(match, data.draw(names), data.draw(label_maps))
        for match in data.draw(st.lists(st.sampled_from(match_list), min_size=1, max_size=10))
    ]
    for job in job_list + near:
        expected = [batch for batch in batches if batch_matches(batch, job)]
        assert [id(b) for b in index.batches_for(job)] == [id(b) for b in expected]


def test_a_batch_listed_twice_is_found_twice_in_order() -> None:
    first, second = _batches([{"job_name": "^daily-"}, {"namespace": "ml"}])
    index = BatchIndex([second, first, second])
    job = JobIdentity("ml", "daily-7", None)
    assert index.batches_for(job) == [second, first, second]


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("^recommend-daily-", "recommend-daily-"),
        (r"\Aetl\.v2-", "etl.v2-"),
        ("^ab*", "a"),
        ("^ab?c", "a"),
        ("^(ab)c", ""),
        ("^ab|c", ""),
        ("recommend-", ""),
        ("(?i)^ab", ""),
        ("(?m)^ab", ""),
        ("^[ab]c", ""),
        ("(?x) ^ a b # note", "ab"),
    ],
)
def test_literal_prefix_is_what_every_match_starts_with(pattern: str, prefix: str) -> None:
    assert literal_prefix(re.compile(pattern)) == prefix


def test_a_catastrophic_pattern_cannot_freeze_matching() -> None:
    """With Python's backtracking `re`, this pattern against this name would run for longer
    than the universe has left (2^48 ways to split the name); RE2 answers at once."""
    from monitor.config.model import Config
    from monitor.core.matching import BatchIndex, JobIdentity

    config = Config.model_validate(
        {
            "slack": {"channel": "#a"},
            "batches": [
                {
                    "name": "daily",
                    "match": {"job_name": "^([a-z0-9]+-?)+-daily$"},
                    "deadline": "0 9 * * *",
                }
            ],
        }
    )
    index = BatchIndex(config.batches)
    hostile = JobIdentity("ml", "a" * 48 + "!", None, {})
    assert index.batches_for(hostile) == []
    assert [b.name for b in index.batches_for(JobIdentity("ml", "ab-cd-daily", None, {}))] == [
        "daily"
    ]
