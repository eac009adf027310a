"""Reading a config without positions composes its batches one at a time: the same data,
and the same refusals, as composing the whole document, in a fraction of the memory."""

from __future__ import annotations

import tracemalloc

import pytest
import yaml

from monitor.config.yaml_nodes import MAX_DEPTH, YamlDocument, read_yaml

BATCH = "{name: b%d, match: {cronjob: b%d}, deadline: '0 9 * * *'}"


def both(text: str) -> tuple[YamlDocument, YamlDocument]:
    """The document read without positions (in pieces) and with them (composed whole)."""
    return read_yaml("sla.yaml", text, located=False), read_yaml("sla.yaml", text, located=True)


def assert_same(text: str) -> YamlDocument:
    quick, whole = both(text)
    assert quick.data == whole.data
    assert bool(quick.problems) is bool(whole.problems), (quick.problems, whole.problems)
    return quick


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "slack: {channel: '#a'}\nbatches:\n"
            "  - &first {name: a, match: &m {cronjob: a}, deadline: '0 9 * * *'}\n"
            "  - {name: b, match: *m, deadline: '0 9 * * *'}\n"
            "  - {<<: *first, name: c}\n",
            id="anchors and merges from an earlier batch",
        ),
        pytest.param(
            "defaults: &d {grace: 5m}\nbatches:\n  - {<<: *d, name: a}\nafter: *d\n",
            id="keys before and after the list, an anchor used on both sides",
        ),
        pytest.param("batches: [{name: a}, {name: b}]\ntimezone: UTC\n", id="flow list"),
        pytest.param("batches: []\n", id="empty list"),
        pytest.param("batches: &all [{name: a}]\nother: *all\n", id="anchored list: whole"),
        pytest.param("&root {batches: [*root]}\n", id="anchored top level: whole"),
        pytest.param("batches: {name: a}\n", id="not a list"),
        pytest.param("batches: !!set {a: null}\n", id="tagged, not a list"),
        pytest.param("batches: [{name: a}]\nbatches: [{name: b}]\n", id="listed twice"),
        pytest.param("batches: [{name: a}, *nowhere]\n", id="undefined alias"),
        pytest.param("batches: [&x {name: a}, &x {name: b}]\n", id="duplicate anchor"),
        pytest.param("batches: [{name: a, name: b}]\n", id="duplicate key in a batch"),
        pytest.param("batches: [{name: a}]\n---\nbatches: []\n", id="two documents"),
        pytest.param("batches: [{name: a}\n", id="unclosed"),
        pytest.param("", id="empty file"),
        pytest.param("- batches\n", id="top level is a list"),
        pytest.param("? [a]\n: 1\nbatches: [{name: a}]\n", id="a key that is a list"),
    ],
)
def test_pieces_read_what_the_whole_document_reads(text: str) -> None:
    assert_same(text)


def test_batches_keep_their_order_and_their_values() -> None:
    text = "batches:\n" + "".join(f"  - {BATCH % (n, n)}\n" for n in range(50))
    quick = assert_same(text)
    assert [batch["name"] for batch in quick.data["batches"]] == [f"b{n}" for n in range(50)]
    assert quick.problems == []


@pytest.mark.parametrize("depth", [MAX_DEPTH - 3, MAX_DEPTH - 2, MAX_DEPTH - 1])
def test_nesting_inside_a_batch_counts_the_levels_above_it(depth: int) -> None:
    """The mapping and the list a batch sits in count towards the limit, as when the whole
    document is composed: the limit falls at the same depth either way."""
    text = "batches:\n  - " + "[" * depth + "]" * depth + "\n"
    quick, whole = both(text)
    assert bool(quick.problems) is bool(whole.problems)
    assert quick.data == whole.data
    assert bool(whole.problems) is (depth + 2 > MAX_DEPTH)


def test_an_alias_bomb_inside_the_list_is_refused_by_both() -> None:
    lines = ['bomb: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    lines.append("batches: [" + ", ".join(["*a5"] * 10) + "]")
    quick, whole = both("\n".join(lines) + "\n")
    for document in (quick, whole):
        assert any("document too large" in problem.message for problem in document.problems)


def peak_bytes(text: str, *, pieces: bool) -> int:
    tracemalloc.start()
    try:
        if pieces:
            read_yaml("sla.yaml", text, located=False)
        else:
            loader = yaml.CSafeLoader(text)
            try:
                loader.get_single_node()
            finally:
                loader.dispose()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_config_is_read_with_a_fraction_of_the_memory_of_its_whole_nodes() -> None:
    """Measured at 10,000 batches: 12 MB at the peak in pieces, 47 MB for the nodes alone."""
    if getattr(yaml, "CSafeLoader", None) is None:
        pytest.skip("PyYAML without libyaml: the whole-document composer measured is libyaml's")
    text = "batches:\n" + "".join(f"  - {BATCH % (n, n)}\n" for n in range(2_000))
    assert peak_bytes(text, pieces=True) < peak_bytes(text, pieces=False) / 2
