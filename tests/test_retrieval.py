"""The per-partition embedding index: top-k by cosine similarity, updates and removals."""

from __future__ import annotations

import numpy as np
import pytest

from gears.retrieval import PartitionIndex


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_top_k_matches_brute_force_after_growth_updates_and_removals():
    rng = np.random.default_rng(7)
    index = PartitionIndex(dim=16)
    vectors = {f"p{i}": _unit(rng.normal(size=16)) for i in range(300)}
    for pid, vec in vectors.items():
        index.upsert(pid, vec)
    for i in range(0, 300, 3):
        index.remove(f"p{i}")
        del vectors[f"p{i}"]
    vectors["p1"] = _unit(rng.normal(size=16))
    index.upsert("p1", vectors["p1"])
    query = _unit(rng.normal(size=16))
    expected = sorted(vectors, key=lambda p: -float(vectors[p] @ query))[:10]
    got = index.top_k(query, 10)
    assert [pid for pid, _ in got] == expected
    assert got[0][1] == pytest.approx(float(vectors[expected[0]] @ query), abs=1e-5)
    assert len(index) == 200


def test_small_and_empty_indexes():
    index = PartitionIndex(dim=3)
    assert index.top_k(_unit([1, 0, 0]), 5) == []
    index.upsert("a", _unit([1, 0, 0]))
    index.upsert("b", _unit([0, 1, 0]))
    assert [p for p, _ in index.top_k(_unit([0.1, 1, 0]), 5)] == ["b", "a"]
    index.remove("missing")  # removing an absent passage is a no-op
    assert "a" in index and len(index) == 2


def test_wrong_dimension_is_refused():
    with pytest.raises(ValueError):
        PartitionIndex(dim=4).upsert("x", np.ones(3, dtype=np.float32))
