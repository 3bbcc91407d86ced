"""Rebuild and search cost of gears.lexical.LexicalIndex, for its docstring's table.

Passages are 120-word windows cut at random from the SQuAD paragraphs in data/squad;
queries are 6-word windows. Run: .venv/bin/python scripts/bench_lexical.py [N ...]
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from gears.lexical import LexicalIndex

SQUAD = Path(__file__).resolve().parent.parent / "data/squad/dev-v2.0-half.json"


def main(sizes: list[int]) -> None:
    words = [w for article in json.loads(SQUAD.read_text())["data"]
             for paragraph in article["paragraphs"] for w in paragraph["context"].split()]
    rng = random.Random(0)

    def window(length: int) -> str:
        start = rng.randrange(len(words) - length)
        return " ".join(words[start : start + length])

    for n in sizes:
        index = LexicalIndex()
        passages = [(f"p{i}", window(120)) for i in range(n)]
        t0 = time.perf_counter()
        for part in range(8):  # a node's partitions, loaded one batch each
            index.upsert_many(part, passages[part::8])
        t1 = time.perf_counter()
        index.refresh()
        t2 = time.perf_counter()
        queries = [window(6) for _ in range(200)]
        for q in queries:
            index.search(q, 10)
        t3 = time.perf_counter()
        for q in queries:
            index.search(q, 10, partitions=[0, 3])
        t4 = time.perf_counter()
        print(f"{n:>7} passages: tokenise {t1 - t0:.2f} s, refresh {t2 - t1:.2f} s, "
              f"search {(t3 - t2) / len(queries) * 1e3:.2f} ms, "
              f"search of 2 partitions {(t4 - t3) / len(queries) * 1e3:.2f} ms")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 50_000])
