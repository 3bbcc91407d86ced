"""How often a quantised reader picks the same best span as the fp32 reader.

Both readers answer every question of a SQuAD-format set (the sample questions
by default) through the same Hugging Face QA pipeline; the share of identical
best spans (same start and end) is the agreement a user weighs against speed.
"""

from __future__ import annotations

from pathlib import Path

from qasearch.questions import read_squad_questions

SAMPLE_QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "sample" / "questions.json"


def span_agreement(
    fp32_model, quantized_model, tokenizer, questions_path: Path = SAMPLE_QUESTIONS,
    max_seq_len: int = 384,
) -> tuple[float, int]:
    """(share of questions where both readers give the same span, questions compared)."""
    from transformers import pipeline

    questions = read_squad_questions(questions_path)
    if not questions:
        raise ValueError(f"no questions in {questions_path}")
    readers = [pipeline("question-answering", model=m, tokenizer=tokenizer, device="cpu")
               for m in (fp32_model, quantized_model)]
    same = 0
    for q in questions:
        a, b = (r(question=q.question, context=q.context, max_seq_len=max_seq_len)
                for r in readers)
        same += (a["start"], a["end"]) == (b["start"], b["end"])
    return same / len(questions), len(questions)
