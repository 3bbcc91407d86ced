"""gears.lexical: the BM25 index of a worker's partitions, with real bm25s and PyStemmer."""

from __future__ import annotations

import threading

from gears.lexical import LexicalIndex
from gears.tensorize import embedding_input

FILLER = [
    "The river flows through the old town past the market and the cathedral.",
    "Farmers in the valley grow wheat, barley and grapes for the local wine.",
    "The university library holds manuscripts from the medieval period.",
    "A railway line connects the port with the capital and the northern towns.",
    "The council meets every month in the hall beside the main square.",
]


def filled(parts: int = 2, per_part: int = 20) -> LexicalIndex:
    """An index of ordinary passages in ``parts`` partitions, so IDF means something."""
    index = LexicalIndex()
    for part in range(parts):
        index.upsert_many(part, [(f"f{i}", FILLER[i % len(FILLER)] + f" Item {i}.")
                                 for i in range(per_part)])
    return index


def pids(hits: list[tuple[int, str, float]]) -> list[tuple[int, str]]:
    return [(part, pid) for part, pid, _ in hits]


def test_upserted_passage_is_found_by_a_rare_word_after_refresh():
    index = filled()
    index.upsert(1, "p", "The Norman conquest brought the Domesday survey of landholders.")
    assert index.search("Domesday", 5) == []  # not in the snapshot yet
    assert index.refresh() is True
    hits = index.search("domesday", 5)  # lower-cased like the passage
    assert pids(hits) == [(1, "p")]
    assert hits[0][2] > 0
    assert (1, "p") in index and len(index) == 41 and index.partitions() == {0, 1}


def test_stemming_and_stopwords_apply_to_queries_and_passages_alike():
    index = filled()
    index.upsert(0, "p", "The grapes were harvested in the vineyards.")
    index.refresh()
    assert pids(index.search("Who harvests a vineyard?", 3)) == [(0, "p")]
    assert pids(index.search("HARVESTING", 3)) == [(0, "p")]
    assert index.search("What were they doing there?", 3) == []  # stopwords only


def test_changed_text_is_found_by_the_new_word_not_the_old():
    index = filled()
    index.upsert(0, "p", "Saffron is harvested by hand from crocus flowers.")
    index.refresh()
    assert pids(index.search("saffron", 3)) == [(0, "p")]
    index.upsert(0, "p", "Vanilla comes from the pods of an orchid.")
    index.refresh()
    assert pids(index.search("vanilla", 3)) == [(0, "p")]
    assert index.search("saffron", 3) == []
    assert len(index) == 41


def test_unchanged_upsert_needs_no_rebuild():
    index = filled()
    assert index.refresh() is True
    assert index.refresh() is False
    index.upsert(0, "f1", FILLER[1] + " Item 1.")
    assert index.refresh() is False
    index.remove(0, "missing")
    index.drop_partition(7)
    assert index.refresh() is False


def test_removed_passage_is_gone_at_once_and_after_refresh():
    index = filled()
    index.upsert(0, "p", "The astrolabe measured the altitude of stars.")
    index.refresh()
    index.remove(0, "p")
    assert (0, "p") not in index
    assert index.search("astrolabe", 3) == []  # before the rebuild too
    index.refresh()
    assert index.search("astrolabe", 3) == []


def test_search_looks_past_removed_passages_for_n_hits():
    index = filled()
    # "kiwi" three times in k0..k9 (best), once in k10..k19
    index.upsert_many(0, [(f"k{i}", "kiwi " * (3 if i < 10 else 1) + FILLER[i % 5])
                          for i in range(20)])
    index.refresh()
    for i in range(10):
        index.remove(0, f"k{i}")
    hits = index.search("kiwi", 5)
    assert len(hits) == 5
    assert {pid for _, pid, _ in hits} <= {f"k{i}" for i in range(10, 20)}


def test_dropped_partition_is_never_returned_even_before_refresh():
    index = filled(parts=3)
    index.upsert(2, "p", "The glacier carved a fjord into the granite.")
    index.upsert(1, "q", "A fjord village of fishermen.")
    index.refresh()
    assert {part for part, _, _ in index.search("fjord", 5)} == {1, 2}
    index.drop_partition(2)
    assert index.partitions() == {0, 1}
    assert (2, "p") not in index and len(index) == 41
    # the snapshot still holds partition 2; it must not come back, asked for or not
    assert pids(index.search("fjord", 5)) == [(1, "q")]
    assert index.search("glacier", 5, partitions=[2]) == []
    index.refresh()
    assert pids(index.search("fjord", 5)) == [(1, "q")]


def test_partitions_filter():
    index = filled(parts=4)
    for part in range(4):
        index.upsert(part, "m", f"Mosaic tiles of partition {part} in the apse.")
    index.refresh()
    assert {part for part, _, _ in index.search("mosaic", 10)} == {0, 1, 2, 3}
    assert sorted(pids(index.search("mosaic", 10, partitions={1, 3}))) == [(1, "m"), (3, "m")]
    assert index.search("mosaic", 10, partitions=[]) == []
    assert index.search("mosaic", 10, partitions=[9]) == []
    # the filter is applied before the top n is taken, not after
    assert pids(index.search("mosaic", 1, partitions=[2])) == [(2, "m")]


def test_empty_index_and_degenerate_queries():
    index = LexicalIndex()
    assert index.search("anything", 5) == []
    assert index.refresh() is False
    assert len(index) == 0 and index.partitions() == set()
    index.upsert(0, "p", "Obsidian is volcanic glass.")
    index.refresh()
    assert index.search("obsidian", 0) == []
    assert index.search("obsidian", -3) == []
    assert index.search("", 5) == []
    assert index.search("quasar nebula", 5) == []  # no known term
    assert pids(index.search("obsidian", 100)) == [(0, "p")]  # n above the corpus size
    index.remove(0, "p")
    assert index.refresh() is True
    assert index.search("obsidian", 5) == []
    assert len(index) == 0 and index.partitions() == set()


def test_passages_without_any_token():
    index = LexicalIndex()
    index.upsert_many(0, [("a", ""), ("b", "the of and a")])
    assert index.refresh() is True
    assert index.search("the", 5) == [] and index.search("anything", 5) == []
    index.upsert(0, "c", "Basalt columns.")
    index.refresh()
    assert pids(index.search("basalt", 5)) == [(0, "c")]


def test_ranking_term_frequency_and_rarity():
    index = filled(parts=1, per_part=40)
    index.upsert_many(0, [
        ("once", "Copper was mined in the hills. " + FILLER[0]),
        ("thrice", "Copper, copper and more copper was mined in the hills. " + FILLER[0]),
        ("common", "The river and the market. " + FILLER[1]),
        ("rare", "The lighthouse and the market. " + FILLER[1]),
    ])
    index.refresh()
    ranked = [pid for _, pid, _ in index.search("copper", 5)]
    assert ranked == ["thrice", "once"]
    scores = [score for _, _, score in index.search("copper", 5)]
    assert scores[0] > scores[1] > 0
    # "river" is in many passages, "lighthouse" in one: the rare term weighs more
    ranked = [pid for _, pid, _ in index.search("river lighthouse", 3)]
    assert ranked[0] == "rare"


def test_title_and_section_are_indexed():
    # what the worker indexes: the passage as the embedder sees it, heading first
    text = embedding_input("University of Cambridge\nHistory", "It was founded in 1209.")
    index = filled()
    index.upsert(0, "p", text)
    index.refresh()
    assert pids(index.search("Cambridge history", 3)) == [(0, "p")]


def test_search_during_rebuilds_gets_the_old_or_new_snapshot():
    index = filled(parts=4, per_part=250)
    index.upsert(0, "const", "The zebra grazes.")
    index.upsert(1, "toggle", "The zebra runs.")
    index.refresh()
    seen: set[frozenset[tuple[int, str]]] = set()
    errors: list[BaseException] = []
    stop = threading.Event()
    searches = 0

    def searcher() -> None:
        nonlocal searches
        try:
            while not stop.is_set():
                seen.add(frozenset(pids(index.search("zebra", 10))))
                searches += 1
        except Exception as e:  # reported by the asserts below
            errors.append(e)

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        for i in range(20):
            # the toggled passage mentions zebra in every other snapshot
            index.upsert(1, "toggle", "The giraffe runs." if i % 2 == 0 else "The zebra runs.")
            assert index.refresh() is True
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert searches > 20
    assert seen <= {frozenset({(0, "const"), (1, "toggle")}), frozenset({(0, "const")})}
