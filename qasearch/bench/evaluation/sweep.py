"""What other retrieval and ranking settings would have scored, from one open-domain run.

An open-domain run asks for ``"passages": true``: each response lists the fused
candidates of phase 1 (``retrieved``: every shard's best by dense and by BM25
score, with both scores) and every passage read in phase 2 with its best span and
the reader's score. From these, without asking again:

* recall@k of the gold paragraph for the dense, the lexical and the fused
  rankings (each fusion method and weight of :mod:`api.fusion`), over the
  candidates (exact for k up to the depth each shard returned);
* top-1 EM/F1 for reading only the best K of the passages read (by the served
  fusion) with the answer score's reader weight ``mu`` from 0 to 1. That is exact
  when the run read at least K passages (run with the largest K, e.g. ``--top-k 20``).

This is how the defaults of ``top_k``, ``fusion``, ``lexical_weight`` and
``answer_weight`` are chosen (docs/benchmark.md, "Reading fewer passages").
"""

from __future__ import annotations

from collections.abc import Sequence

from api.fusion import answer_score, retrieval_scores
from qasearch.bench.evaluation import calibration
from qasearch.bench.evaluation.metric import aggregate, score
from qasearch.core.no_answer import PIPELINE_THRESHOLD, says_no_answer

RECALL_KS = (1, 5, 10, 20)
READ_KS = (1, 2, 3, 5, 10, 20)
ANSWER_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
RANKINGS = (("dense", "dense", 0.0), ("lexical", "lexical", 1.0),
            *((f"weighted {w}", "weighted", w) for w in (0.1, 0.2, 0.3, 0.5, 0.7)),
            ("rrf", "rrf", 0.0))


def _gold_rank(docs: Sequence[str], gold: str) -> int | None:
    return docs.index(gold) if gold in docs else None


def recall_table(rows: Sequence[dict], rrf_k: int = 60) -> dict[str, dict[str, float]]:
    """{ranking: {k: share of questions whose gold paragraph is in its top k}}."""
    table: dict[str, dict[str, float]] = {}
    usable = [r for r in rows if r.get("retrieved")]
    if not usable:
        return table
    for name, method, weight in RANKINGS:
        hits = dict.fromkeys(RECALL_KS, 0)
        for row in usable:
            cands = row["retrieved"]
            if method == "lexical":
                cands = [c for c in cands if c["lexical"] is not None]
            scores = retrieval_scores([c["dense"] for c in cands], [c["lexical"] for c in cands],
                                      method, weight, rrf_k)
            order = sorted(range(len(cands)), key=lambda i: -scores[i])
            rank = _gold_rank([cands[i]["doc_id"] for i in order], row["gold_doc"])
            for k in RECALL_KS:
                hits[k] += rank is not None and rank < k
        table[name] = {str(k): hits[k] / len(usable) for k in RECALL_KS}
    return table


def read_table(rows: Sequence[dict], handle_impossible: bool) -> dict[str, dict]:
    """{"K=k": {"mu": {EM, F1}}}: top-1 scores when reading the best k passages read."""
    table: dict[str, dict] = {}
    usable = [r for r in rows if r.get("read_answers") is not None]
    if not usable:
        return table
    most = max(len(r["read_answers"]) for r in usable)
    for k in (k for k in READ_KS if k <= max(most, 1)):
        per_mu = {}
        for mu in ANSWER_WEIGHTS:
            pairs = []
            for row in usable:
                read = sorted(row["read_answers"], key=lambda p: -p["retrieval"])[:k]
                threshold = row.get("no_answer_threshold", PIPELINE_THRESHOLD) \
                    if handle_impossible else None
                pairs.append(score(_predict(read, mu, threshold), row["answers"]))
            per_mu[str(mu)] = aggregate(pairs)
        table[f"K={k}"] = per_mu
    return table


def _predict(read: Sequence[dict], mu: float, threshold: float | None) -> str:
    """The top answer of ``read`` at answer weight ``mu``; "" when there is none, or when
    ``threshold`` is given and the served no-answer rule says so at it."""
    spans = [p for p in read if p.get("answer")]
    if not spans:
        return ""
    best = max(spans, key=lambda p: answer_score(p["retrieval"], p["score"], mu))
    if threshold is not None and says_no_answer(best["score"], best.get("null_score"),
                                                threshold):
        return ""
    return best["answer"]


def no_answer_table(rows: Sequence[dict]) -> dict:
    """The no-answer threshold of the highest top-1 F1 over ``rows`` and its two-fold
    figure (:func:`qasearch.bench.evaluation.calibration.calibrate`), from each
    response's best answer and its margin."""
    usable = [r for r in rows if "margin" in r]
    if not usable:
        return {}
    items = calibration.items_from(usable, lambda r: (r["best"], r["margin"]), score)
    served = usable[0].get("no_answer_threshold")
    table = calibration.calibrate(items, "these open-domain responses")
    if served is not None:
        table["at_served_threshold"] = calibration.scores_at(items, served)
    return table
