"""Reader-only scores of a trained reader, as ``model train --eval`` and ``model ship`` report.

Both score with the workers' own window and decoding code
(:mod:`qasearch.bench.evaluation.reader_eval`), on the served ``max_seq_len`` and
``doc_stride``, in up to two ways:

* ``answerable``: the file's answerable questions, best span always given
  (``handle_impossible_answer`` off): the figure SQuAD v1.1 readers are compared by;
* ``with_unanswerable`` (files that have unanswerable questions): every question,
  "no answer" allowed by the served rule (:mod:`qasearch.core.no_answer`) at the
  reader's threshold, scored the SQuAD v2.0 way (the empty prediction is right
  exactly for unanswerable questions), with the ``calibration`` of that threshold:
  the one of the best F1 on the file, and its two-fold figure.
"""

from __future__ import annotations

from pathlib import Path


def _summary(scores, path: Path) -> dict:
    out = {"file": path.name, "questions": scores.questions,
           "exact_match": round(scores.exact_match, 2), "f1": round(scores.f1, 2),
           "handle_impossible": scores.handle_impossible, "max_seq_len": scores.max_seq_len,
           "doc_stride": scores.doc_stride, "ms_per_question": round(scores.ms_per_question, 1)}
    if scores.handle_impossible:
        from qasearch.bench.evaluation.reader_eval import calibration_of

        out["answerable"] = scores.answerable
        out["unanswerable"] = scores.unanswerable
        out["no_answer_threshold"] = scores.no_answer_threshold
        out["calibration"] = calibration_of(scores.predictions, path.name)
    return out


def score_model(model, tokenizer, eval_file: Path, *, limit: int = 0,
                progress: bool = True) -> dict:
    """{"answerable": {...}, "with_unanswerable": {...}} for a model in memory."""
    from qasearch.bench.evaluation.reader_eval import EagerReader, score_questions
    from qasearch.bench.evaluation.squadfile import read_eval_questions
    from qasearch.core.settings import load_settings

    settings = load_settings()
    questions = read_eval_questions(eval_file, limit or None)
    reader = EagerReader.from_hf(model.eval(), tokenizer)
    answerable = [q for q in questions if not q.impossible]
    out = {}
    if answerable:
        out["answerable"] = _summary(score_questions(
            reader, answerable, settings=settings, handle_impossible=False,
            progress=progress), Path(eval_file))
    if len(answerable) < len(questions):
        out["with_unanswerable"] = _summary(score_questions(
            reader, questions, settings=settings, handle_impossible=True,
            progress=progress), Path(eval_file))
    return out


def score_run(run_dir: Path, eval_file: Path, *, limit: int = 0, progress: bool = True) -> dict:
    """Score a finished training run's reader and record the scores in its manifest."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qasearch.training import trainer

    manifest = trainer.read_manifest(run_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(run_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(run_dir, use_fast=True, local_files_only=True)
    scores = score_model(model, tokenizer, eval_file, limit=limit, progress=progress)
    manifest["scores"] = scores
    trainer.write_manifest(run_dir, manifest)
    return scores
