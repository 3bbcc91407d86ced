"""How the gateway ranks: retrieval fusion (which passages to read) and the answer score.

Retrieval. Every shard returns its best candidates with a dense cosine similarity
and, when BM25 placed them in its top, a lexical score (gears.answering). Over
all shards' candidates the gateway computes one retrieval score in [0, 1]:

* ``weighted``: ``(1 - w) * dense + w * lexical``, the dense similarity min-max
  scaled over the candidates and the BM25 score divided by the best one (0 when
  BM25 did not return the passage);
* ``rrf``: reciprocal-rank fusion, ``1 / (k + rank)`` summed over the dense and
  the lexical ranking (a list that does not hold the passage adds nothing),
  divided by its largest possible value ``2 / (k + 1)``.

Answer. As BERTserini does, an answer's ``score`` interpolates the reader's span
score (``P(start) * P(end)``, in [0, 1]) with its passage's retrieval score:
``(1 - mu) * retrieval + mu * reader``. The weights and the method are settings
(``fusion``, ``lexical_weight``, ``rrf_k``, ``answer_weight``) chosen by measured
recall and F1 (docs/benchmark.md, "Reading fewer passages").
"""

from __future__ import annotations

from collections.abc import Sequence

from qasearch.core.settings import FUSIONS, Settings


def retrieval_scores(
    dense: Sequence[float | None], lexical: Sequence[float | None], method: str = "weighted",
    lexical_weight: float = 0.3, rrf_k: int = 60,
) -> list[float]:
    """One retrieval score in [0, 1] per candidate (``dense[i]``, ``lexical[i]``)."""
    if method not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {method!r}")
    n = len(dense)
    if n == 0:
        return []
    if method == "rrf":
        fused = [0.0] * n
        for values in (dense, lexical):
            ranked = sorted((i for i in range(n) if values[i] is not None),
                            key=lambda i: values[i], reverse=True)
            for rank, i in enumerate(ranked, start=1):
                fused[i] += 1.0 / (rrf_k + rank)
        return [f / (2.0 / (rrf_k + 1)) for f in fused]
    dense_n = _min_max(dense)
    best_lexical = max((v for v in lexical if v is not None), default=0.0)
    lexical_n = [(v or 0.0) / best_lexical if best_lexical > 0 else 0.0 for v in lexical]
    weight = {"dense": 0.0, "lexical": 1.0}.get(method, lexical_weight)
    return [(1.0 - weight) * d + weight * lx for d, lx in zip(dense_n, lexical_n)]


def rank(candidates: list[dict], settings: Settings) -> list[dict]:
    """``candidates`` (dicts with ``dense`` and ``lexical``), each given its ``retrieval``
    score by the settings' fusion, best first (ties: the more similar first)."""
    scores = retrieval_scores([c["dense"] for c in candidates],
                              [c["lexical"] for c in candidates],
                              settings.fusion, settings.lexical_weight, settings.rrf_k)
    for cand, value in zip(candidates, scores):
        cand["retrieval"] = value
    return sorted(candidates, key=lambda c: (-c["retrieval"], -c["dense"]))


def answer_score(retrieval: float, reader: float, answer_weight: float) -> float:
    """BERTserini's interpolation of a passage's retrieval score and its span's score."""
    return (1.0 - answer_weight) * retrieval + answer_weight * reader


def _min_max(values: Sequence[float | None]) -> list[float]:
    present = [v for v in values if v is not None]
    if not present:
        return [0.0] * len(values)
    low, high = min(present), max(present)
    if high - low <= 1e-12:
        return [1.0 if v is not None else 0.0 for v in values]
    return [(v - low) / (high - low) if v is not None else 0.0 for v in values]
