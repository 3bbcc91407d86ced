"""The questions of a SQuAD v1.1 / v2.0 file, for scoring, with their paragraph's doc id.

The paragraphs are read by the SQuAD loader (:func:`loaders.squad.read_paragraphs`),
so a question's ``doc_id`` is the id its paragraph gets when the same file is
loaded as a corpus: the open-domain evaluation finds the gold paragraph by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loaders.documents import LoadError
from loaders.squad import read_paragraphs


class EvalFileError(ValueError):
    """The file cannot be scored; the message names the file and what is wrong."""


@dataclass(frozen=True)
class EvalQuestion:
    qid: str
    question: str
    answers: tuple[str, ...]  # reference texts; () for an unanswerable question
    context: str
    doc_id: str
    impossible: bool


def _answers(path: Path, where: str, qa: dict) -> tuple[tuple[str, ...], bool]:
    impossible = bool(qa.get("is_impossible", False))
    raw = qa.get("answers", [])
    if not isinstance(raw, list):
        raise EvalFileError(f'{path} {where}: "answers" must be a list')
    texts = []
    for answer in raw:
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise EvalFileError(f'{path} {where}: every answer needs a "text" string')
        texts.append(answer["text"])
    if impossible:
        return (), True  # v2.0: "answers" is empty; "plausible_answers" are not gold
    if not texts:
        raise EvalFileError(f"{path} {where}: no answers, and not marked is_impossible")
    return tuple(texts), False


def read_eval_questions(path: str | Path, limit: int | None = None) -> list[EvalQuestion]:
    """The first ``limit`` questions (all by default), in file order; a malformed file
    raises :class:`EvalFileError` before anything is scored."""
    path = Path(path)
    if not path.is_file():
        raise EvalFileError(f"{path}: no such file")
    try:
        paragraphs = read_paragraphs(path)
    except LoadError as exc:
        raise EvalFileError(f"{exc} (not a SQuAD JSON file?)") from None
    found: list[EvalQuestion] = []
    for p_no, paragraph in enumerate(paragraphs):
        if not isinstance(paragraph.qas, list):
            raise EvalFileError(f'{path} paragraph {p_no}: "qas" must be a list')
        for q_no, qa in enumerate(paragraph.qas):
            where = f"paragraph {p_no} question {q_no}"
            if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) \
                    or not qa["question"].strip():
                raise EvalFileError(f'{path} {where}: needs a non-empty "question" string')
            answers, impossible = _answers(path, where, qa)
            found.append(EvalQuestion(str(qa.get("id", f"q{len(found)}")), qa["question"],
                                      answers, paragraph.context, paragraph.doc_id, impossible))
            if limit is not None and len(found) >= limit:
                return found
    if not found:
        raise EvalFileError(f"{path}: no questions to score")
    return found
