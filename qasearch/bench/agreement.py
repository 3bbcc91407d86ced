"""A quantised reader beside the fp32 one: answer quality and identical spans.

Both readers are scored by the reader-only evaluation
(:func:`qasearch.bench.evaluation.reader_eval.evaluate_reader`: the workers' windows and
decoding, each question against its own paragraph) on the same questions of a
SQuAD-format file, the sample questions by default. EM/F1 of each, and the share
of questions where both give the same best span, are what a user weighs against
the int8 speed-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAMPLE_QUESTIONS = Path(__file__).resolve().parents[2] / "data" / "sample" / "questions.json"


@dataclass(frozen=True)
class QuantizedQuality:
    questions: int
    fp32: dict  # {"exact_match", "f1"} in percent
    quantized: dict
    same_span: float  # share of questions where both readers give the same span

    def summary(self) -> dict:
        return {"questions": self.questions, "fp32": self.fp32, "quantized": self.quantized,
                "same_span": self.same_span}


def quantized_quality(
    fp32_model, quantized_model, tokenizer, questions_path: Path = SAMPLE_QUESTIONS,
    max_seq_len: int = 384, limit: int | None = None,
) -> QuantizedQuality:
    """EM/F1 of both readers on the same questions, and how often their spans agree."""
    from qasearch.bench.evaluation.reader_eval import evaluate_reader

    runs = [evaluate_reader(m, tokenizer, questions_path, limit=limit, max_seq_len=max_seq_len,
                            progress=False) for m in (fp32_model, quantized_model)]
    a, b = (r.predictions for r in runs)
    same = sum((x["prediction"], x["start"], x["end"]) == (y["prediction"], y["start"], y["end"])
               for x, y in zip(a, b))
    fp32, quantized = ({"exact_match": r.exact_match, "f1": r.f1} for r in runs)
    return QuantizedQuality(len(a), fp32, quantized, same / len(a))
