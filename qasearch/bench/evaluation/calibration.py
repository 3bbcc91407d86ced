"""Choosing a reader's no-answer threshold on a dev file, and what it costs.

Every question scored with "no answer" allowed gives one :class:`Item`: the margin
of its best answer (:func:`qasearch.core.no_answer.margin`; None when nothing was
found), the EM/F1 that answer scores and the EM/F1 of saying nothing (1 exactly for
an unanswerable question). A threshold ``t`` answers the questions whose margin is
at most ``t`` and says "no answer" for the rest; :func:`best_threshold` scans every
distinct margin for the ``t`` of the highest F1, as the official SQuAD v2.0
``evaluate-v2.0.py`` reports ``best_f1_thresh``.

A threshold fit on the very questions it is scored on flatters itself, so
:func:`calibrate` also reports a two-fold figure: the questions are split by their
paragraph (even and odd paragraphs), the threshold is chosen on one half and scored
on the other, and the two halves' scores are pooled. Both are in what ``model ship
--eval`` and ``qasearch eval`` report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qasearch.core.no_answer import PIPELINE_THRESHOLD


@dataclass(frozen=True)
class Item:
    margin: float | None  # log(null) - log(span) of the best answer; None: no span
    answered: tuple[float, float]  # (EM, F1) of giving the best answer
    silent: tuple[float, float]  # (EM, F1) of saying "no answer"
    impossible: bool
    group: str  # what keeps questions together in a fold (their paragraph)


def _says_none(item: Item, threshold: float) -> bool:
    return item.margin is None or item.margin > threshold


def _picked(item: Item, threshold: float) -> tuple[float, float]:
    """(EM, F1) of what ``threshold`` makes of ``item``: silence or its best answer."""
    return item.silent if _says_none(item, threshold) else item.answered


def scores_at(items: Sequence[Item], threshold: float) -> dict:
    """EM/F1 in percent (all, answerable, unanswerable) and the share of "no answer"."""
    def pct(chosen: list[tuple[float, float]], i: int) -> float | None:
        return round(100.0 * sum(s[i] for s in chosen) / len(chosen), 2) if chosen else None

    picked = [(it, _picked(it, threshold)) for it in items]
    groups = {"all": picked, "answerable": [p for p in picked if not p[0].impossible],
              "unanswerable": [p for p in picked if p[0].impossible]}
    out: dict = {"threshold": round(threshold, 4), "questions": len(items),
                 "no_answer_share": round(sum(_says_none(it, threshold) for it in items)
                                          / len(items), 4) if items else None}
    for name, rows in groups.items():
        chosen = [s for _, s in rows]
        out[name] = {"questions": len(chosen), "exact_match": pct(chosen, 0),
                     "f1": pct(chosen, 1)}
    return out


def best_threshold(items: Sequence[Item]) -> float:
    """The threshold of the highest F1 over ``items`` (ties: the lowest such threshold).

    Starting from "no answer" for all, answering the questions in order of margin
    changes the F1 sum by answered - silent each; the best prefix ends at a margin,
    and the threshold is half-way to the next one so that it is not on an edge.
    """
    ranked = sorted((it for it in items if it.margin is not None), key=lambda it: it.margin)
    if not ranked:
        return PIPELINE_THRESHOLD
    total = best = 0.0
    best_end = -1  # answer nothing
    for i, it in enumerate(ranked):
        total += it.answered[1] - it.silent[1]
        nxt = ranked[i + 1].margin if i + 1 < len(ranked) else None
        if nxt is not None and nxt == it.margin:
            continue  # equal margins are answered together
        if total > best + 1e-12:
            best, best_end = total, i
    if best_end < 0:
        return ranked[0].margin - 1.0
    here = ranked[best_end].margin
    after = next((it.margin for it in ranked[best_end + 1:] if it.margin > here), None)
    return here + 0.5 if after is None else (here + after) / 2.0


def _folds(items: Sequence[Item]) -> tuple[list[Item], list[Item]]:
    groups = sorted({it.group for it in items})
    first = {g for i, g in enumerate(groups) if i % 2 == 0}
    return ([it for it in items if it.group in first],
            [it for it in items if it.group not in first])


def calibrate(items: Sequence[Item], chosen_on: str) -> dict:
    """The best threshold on ``items`` with its scores, the pipeline's threshold's scores
    beside it, and the two-fold figure (chosen on one half, scored on the other)."""
    threshold = best_threshold(items)
    a, b = _folds(items)
    held_out: dict = {}
    if a and b:
        t_a, t_b = best_threshold(a), best_threshold(b)
        pooled = [(it, t_b) for it in a] + [(it, t_a) for it in b]
        held_out = {
            "thresholds": [round(t_a, 4), round(t_b, 4)],
            "f1": round(100.0 * sum(_picked(it, t)[1] for it, t in pooled) / len(pooled), 2),
            "exact_match": round(100.0 * sum(_picked(it, t)[0] for it, t in pooled)
                                 / len(pooled), 2),
        }
    return {"threshold": round(threshold, 4), "chosen_on": chosen_on,
            "rule": "no answer when log(null) - log(best span) of the best answer's passage "
                    "is above the threshold",
            "at_threshold": scores_at(items, threshold),
            "at_pipeline_threshold": scores_at(items, PIPELINE_THRESHOLD),
            "two_fold": held_out}


def items_from(rows: Sequence[dict], answer: Callable[[dict], tuple[str, float | None]],
               score: Callable[[str, Sequence[str]], tuple[float, float]]) -> list[Item]:
    """One :class:`Item` per row (``answers``, ``impossible`` and a group key ``gold_doc``
    or ``doc_id``), ``answer(row)`` giving its best answer and that answer's margin."""
    items = []
    for row in rows:
        text, m = answer(row)
        items.append(Item(margin=m, answered=score(text, row["answers"]),
                          silent=score("", row["answers"]), impossible=row["impossible"],
                          group=str(row.get("gold_doc") or row.get("doc_id"))))
    return items
