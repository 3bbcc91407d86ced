"""The official SQuAD v1.1 / v2.0 metric: exact match and token F1 after normalisation.

Kept step for step as the official ``evaluate-v2.0.py``: lower case, punctuation
removed, the articles a/an/the removed, whitespace collapsed; F1 over the bag of
tokens; the best over a question's reference answers. An unanswerable question
(v2.0 ``is_impossible``, no answers) has the single reference ``""``: it scores 1
only for an empty prediction, and an empty prediction scores 0 on an answerable one.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (the official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = _tokens(prediction), _tokens(gold)
    if not pred or not ref:
        # an empty answer (or one that normalises to nothing) matches only another
        return float(pred == ref)
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def gold_answers(answers: Sequence[str]) -> list[str]:
    """The references a prediction is scored against: the answers that normalise to
    something (as the official script keeps them), or ``[""]`` for an unanswerable one."""
    kept = [a for a in answers if normalize_answer(a)]
    return kept or [""]


def score(prediction: str, answers: Sequence[str]) -> tuple[float, float]:
    """(exact match, F1), each in [0, 1], the best over the references ``answers``."""
    golds = gold_answers(answers)
    return (max(exact_match(prediction, g) for g in golds),
            max(token_f1(prediction, g) for g in golds))


def aggregate(scores: Sequence[tuple[float, float]]) -> dict:
    """Mean exact match and F1 in percent (as the official script reports them)."""
    n = len(scores)
    return {
        "questions": n,
        "exact_match": 100.0 * sum(em for em, _ in scores) / n if n else None,
        "f1": 100.0 * sum(f1 for _, f1 in scores) / n if n else None,
    }
