"""When an answer says "nothing read answers this question": the no-answer rule.

A reader trained the SQuAD v2.0 way scores "no answer" as the span (CLS, CLS) of a
window. Its null score P(start = CLS) x P(end = CLS) and a span's score
P(start) x P(end) are both products of the same two softmaxes, so their log ratio,
the *margin* ``log(null) - log(span)``, is the difference of their logit sums: the
quantity the official SQuAD v2.0 scripts compare with ``null_score_diff_threshold``.

The rule: no answer when the margin is above the reader's *threshold*. The Hugging
Face pipeline's ``handle_impossible_answer`` is threshold 0 (the null beats the best
span). A reader trained here on few unanswerable questions puts the null too low,
so its threshold is chosen on a dev file (:mod:`qasearch.bench.evaluation.calibration`),
kept with the reader (``no_answer.json`` in its folder, then the package manifest's
``reader.no_answer``), and the ``QASEARCH_NO_ANSWER_THRESHOLD`` setting overrides it.

Over several passages (the gateway reads the global best few), the margin is the
best answer's own: its span score against the null score of the passage it came
from. Another passage's null says nothing about this span (docs/architecture.md,
"Saying no answer", gives the measurements behind that choice).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

PIPELINE_THRESHOLD = 0.0  # the pipeline's rule: no answer when the null beats the span
FILE = "no_answer.json"  # in a reader folder: {"threshold": T, ...how it was chosen}
_FLOOR = 1e-30  # a probability of 0 (underflow) is taken as this, not -inf


class NoAnswerError(ValueError):
    """A threshold that cannot be used; the message says where it came from."""


def margin(span_score: float, null_score: float) -> float:
    """``log(null) - log(span)``: above 0 when the reader prefers "no answer"."""
    return math.log(max(null_score, _FLOOR)) - math.log(max(span_score, _FLOOR))


def margin_or_none(span_score: float | None, null_score: float | None) -> float | None:
    """:func:`margin`, or None when the span or the null score is missing."""
    if span_score is None or null_score is None:
        return None
    return margin(span_score, null_score)


def says_no_answer(span_score: float | None, null_score: float | None,
                   threshold: float) -> bool:
    """Whether a passage's best span (``None``: it has none) loses to its null score.

    A passage without a null score (a reader package from before null scores were
    kept) never says no answer while it has a span.
    """
    if span_score is None:
        return True
    if null_score is None:
        return False
    return margin(span_score, null_score) > threshold


def check_threshold(value: object, where: str) -> float:
    """``value`` as a finite float, or :class:`NoAnswerError` naming ``where``."""
    try:
        threshold = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NoAnswerError(f"{where}: no-answer threshold {value!r} is not a number") from None
    if not math.isfinite(threshold):
        raise NoAnswerError(f"{where}: no-answer threshold {value!r} is not finite")
    return threshold


def served_threshold(override: str, reader_manifest: Mapping) -> float:
    """The threshold in force: the setting when it is set, else the package's, else 0."""
    if override.strip():
        return check_threshold(override, "QASEARCH_NO_ANSWER_THRESHOLD")
    stored = (reader_manifest.get("no_answer") or {}).get("threshold")
    if stored is None:
        return PIPELINE_THRESHOLD
    return check_threshold(stored, "the model package's reader.no_answer")


def read_folder(folder: str | Path) -> dict | None:
    """A reader folder's ``no_answer.json`` (None when it has none)."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NoAnswerError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or "threshold" not in data:
        raise NoAnswerError(f"{path}: expected an object with a 'threshold'")
    data["threshold"] = check_threshold(data["threshold"], str(path))
    return data


def write_folder(folder: str | Path, calibration: Mapping) -> Path:
    """Write ``calibration`` (with its ``threshold``) as the folder's ``no_answer.json``."""
    check_threshold(calibration.get("threshold"), "calibration")
    path = Path(folder) / FILE
    path.write_text(json.dumps(dict(calibration), indent=2, sort_keys=True) + "\n")
    return path
