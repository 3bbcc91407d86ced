"""Reader-only scoring: each question against its own paragraph, read as a worker reads.

The paragraph is tokenised as :mod:`gears.tensorize` stores a passage, the question
is normalised and capped as the worker does, and windows and spans come from the
worker's own functions (:func:`gears.engine.passage_windows`,
:func:`gears.engine.best_answer`). So the score is the score of what the cluster
would serve if retrieval handed the reader the right paragraph. Two readers:

* a Hugging Face QA model in memory (eager, with its fast tokenizer):
  :func:`evaluate_reader`, or :func:`evaluate_reader_folder` for a folder; the
  training command calls the first at the end of a run;
* a model package as served (the traced, perhaps int8, reader):
  :func:`evaluate_package` with a :class:`~qasearch.core.models.LoadedModel`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from gears import reader
from gears.engine import best_answer, passage_windows, question_ids
from gears.tensorize import passage_tokens
from qasearch.bench.evaluation import calibration
from qasearch.bench.evaluation.metric import aggregate, score
from qasearch.bench.evaluation.squadfile import EvalQuestion, read_eval_questions
from qasearch.core import keys, models, no_answer, specials
from qasearch.core.settings import Settings, load_settings
from qasearch.core.specials import Specials

DEFAULT_BATCH_SIZE = 16  # windows per forward pass


@dataclass(eq=False)
class EagerReader:
    """A Hugging Face QA model with the attributes the worker's reading code uses of a
    :class:`~qasearch.core.models.LoadedModel` (tokenizer, specials, logits)."""

    model: torch.nn.Module
    reader_tokenizer: Tokenizer
    specials: Specials
    uses_token_type_ids: bool
    reader_max_seq_len: int
    version: str = "eager"
    # as a package's manifest: "reader" holds "no_answer" when the folder was calibrated
    manifest: dict = field(default_factory=dict)

    @classmethod
    def from_hf(cls, model: torch.nn.Module, tokenizer) -> EagerReader:
        """From a model and its fast tokenizer, exactly as ``model push`` packages them."""
        from loaders.model_push import max_seq_len_for, reader_inputs

        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the reader needs a fast tokenizer (tokenizer.json)")
        plain = specials.plain_copy(tokenizer.backend_tokenizer)
        limit = max_seq_len_for(1 << 30, tokenizer, model.config)
        return cls(
            model=model.eval(), reader_tokenizer=plain,
            specials=specials.from_tokenizer(plain, tokenizer.cls_token_id,
                                             tokenizer.sep_token_id, tokenizer.pad_token_id),
            uses_token_type_ids="token_type_ids" in reader_inputs(model, tokenizer),
            reader_max_seq_len=limit,
        )

    def question_ids(self, text: str, max_tokens: int | None = None) -> np.ndarray:
        return models.question_ids(self.reader_tokenizer, text, max_tokens)

    def reader_logits(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                      token_type_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        inputs = {"input_ids": torch.from_numpy(input_ids),
                  "attention_mask": torch.from_numpy(attention_mask)}
        if self.uses_token_type_ids and token_type_ids is not None:
            inputs["token_type_ids"] = torch.from_numpy(token_type_ids)
        with torch.inference_mode():
            out = self.model(**inputs, return_dict=False)
        return out[0].float().numpy(), out[1].float().numpy()


@dataclass
class ReaderScores:
    """EM and F1 in percent (0-100): over all questions, the answerable and the
    unanswerable ones; ``predictions`` holds one row per question."""

    exact_match: float
    f1: float
    questions: int
    answerable: dict
    unanswerable: dict
    handle_impossible: bool
    max_seq_len: int
    doc_stride: int
    seconds: float
    predictions: list[dict] = field(default_factory=list)
    no_answer_threshold: float | None = None  # the threshold "no answer" was said at

    @property
    def ms_per_question(self) -> float:
        return 1000.0 * self.seconds / max(1, self.questions)

    def to_dict(self, with_predictions: bool = True) -> dict:
        out = asdict(self)
        out["ms_per_question"] = self.ms_per_question
        if not with_predictions:
            out.pop("predictions")
        return out


def _forward(model, windows: Sequence[reader.Window], batch_size: int,
             bucket: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, end) logits of every window, in order; similar lengths share a batch."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    out: list = [None] * len(windows)
    for first in range(0, len(order), batch_size):
        rows = order[first : first + batch_size]
        ids, mask, types = reader.pad_batch([windows[i] for i in rows], bucket)
        start, end = model.reader_logits(ids, mask, types)
        for r, i in enumerate(rows):
            out[i] = (start[r], end[r])
    return out


def calibration_of(rows: Sequence[dict], chosen_on: str) -> dict:
    """The no-answer threshold these rows (of :func:`score_questions`) would choose,
    with its scores (:func:`qasearch.bench.evaluation.calibration.calibrate`)."""
    items = calibration.items_from(rows, lambda r: (r["span"], r["margin"]), score)
    return calibration.calibrate(items, chosen_on)


def threshold_of(model, settings: Settings) -> float:
    """The no-answer threshold ``model`` is served with: the setting, else what the
    package (or an eager reader's folder) was calibrated to, else the pipeline's 0."""
    return no_answer.served_threshold(settings.no_answer_threshold,
                                      model.manifest.get("reader", {}))


def score_questions(
    model, questions: Sequence[EvalQuestion], *, settings: Settings,
    handle_impossible: bool, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True,
    threshold: float | None = None,
) -> ReaderScores:
    """Score ``model`` (a LoadedModel or an EagerReader) on ``questions``; with
    ``handle_impossible``, "no answer" is said by the served rule at ``threshold``
    (default: the model's own, :func:`threshold_of`)."""
    if threshold is None:
        threshold = threshold_of(model, settings)
    from tqdm import tqdm

    started = time.perf_counter()
    encodings: dict[str, reader.PassageTokens] = {}
    rows: list[dict] = []
    per_step = max(1, batch_size // 2)  # questions per step: most fit in one or two windows
    bar = tqdm(total=len(questions), desc="reader eval", unit="q", disable=not progress)
    for first in range(0, len(questions), per_step):
        chunk = questions[first : first + per_step]
        items = []
        for q in chunk:
            if q.context not in encodings:
                encodings[q.context] = passage_tokens(model, q.context)
            tokens = encodings[q.context]
            q_ids = question_ids(model, settings, keys.question_form(q.question))
            items.append((q, tokens, tokens.offsets,
                          passage_windows(model, settings, q_ids, tokens)))
        flat = [w for *_, ws in items for w in ws]
        logits = _forward(model, flat, batch_size, settings.length_bucket_tokens)
        pos = 0
        for q, _, offsets, windows in items:
            part = logits[pos : pos + len(windows)]
            pos += len(windows)
            # the best span always, then the served rule on its margin: so each row
            # keeps what calibration needs whatever the threshold
            value = best_answer(model, settings, windows, part, q.context, offsets)
            span, null = (value["score"], value["null_score"]) if value else (None, None)
            silent = handle_impossible and no_answer.says_no_answer(span, null, threshold)
            prediction = "" if silent or not value else value["answer"]
            em, f1 = score(prediction, q.answers)
            rows.append({"id": q.qid, "question": q.question, "prediction": prediction,
                         "span": value["answer"] if value else "", "score": span,
                         "null_score": null, "margin": no_answer.margin_or_none(span, null),
                         "start": value["start"] if value else 0,
                         "end": value["end"] if value else 0,
                         "answers": list(q.answers), "impossible": q.impossible,
                         "doc_id": q.doc_id, "exact_match": em, "f1": f1})
        bar.update(len(chunk))
    bar.close()
    overall = aggregate([(r["exact_match"], r["f1"]) for r in rows])
    max_len = min(settings.max_seq_len, model.reader_max_seq_len)
    return ReaderScores(
        exact_match=overall["exact_match"], f1=overall["f1"], questions=len(rows),
        answerable=aggregate([(r["exact_match"], r["f1"]) for r in rows if not r["impossible"]]),
        unanswerable=aggregate([(r["exact_match"], r["f1"]) for r in rows if r["impossible"]]),
        handle_impossible=handle_impossible, max_seq_len=max_len,
        doc_stride=settings.doc_stride, seconds=time.perf_counter() - started, predictions=rows,
        no_answer_threshold=threshold if handle_impossible else None,
    )


def _run(model, squad_path: str | Path, *, limit: int | None = None,
         max_seq_len: int | None = None, doc_stride: int | None = None,
         handle_impossible: bool | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
         progress: bool = True, settings: Settings | None = None) -> ReaderScores:
    questions = read_eval_questions(squad_path, limit)
    settings = (settings or load_settings()).replace(max_seq_len=max_seq_len,
                                                     doc_stride=doc_stride)
    if handle_impossible is None:  # a v2.0 file asks for "no answer" where there is none
        handle_impossible = any(q.impossible for q in questions)
    return score_questions(model, questions, settings=settings,
                           handle_impossible=handle_impossible, batch_size=batch_size,
                           progress=progress)


def evaluate_reader(
    model: torch.nn.Module, tokenizer, squad_path: str | Path, *, limit: int | None = None,
    max_seq_len: int | None = None, doc_stride: int | None = None,
    handle_impossible: bool | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True, settings: Settings | None = None,
) -> ReaderScores:
    """Score a loaded Hugging Face QA model (eager) and its fast tokenizer on the first
    ``limit`` questions of a SQuAD v1.1/v2.0 file, each against its own paragraph.

    ``max_seq_len``/``doc_stride`` default to the served settings (``QASEARCH_*``,
    384/128), the length capped by the model; ``handle_impossible`` defaults to
    True exactly when the file has unanswerable questions. Raises
    :class:`~qasearch.bench.evaluation.squadfile.EvalFileError` for a file it cannot score.
    """
    return _run(EagerReader.from_hf(model, tokenizer), squad_path, limit=limit,
                max_seq_len=max_seq_len, doc_stride=doc_stride,
                handle_impossible=handle_impossible, batch_size=batch_size, progress=progress,
                settings=settings)


def evaluate_reader_folder(folder: str | Path, squad_path: str | Path,
                           **options: object) -> ReaderScores:
    """:func:`evaluate_reader` on a Hugging Face QA folder (loaded offline)."""
    from loaders.model_push import load_reader

    model, tokenizer, _ = load_reader(str(folder))
    reader = EagerReader.from_hf(model, tokenizer)
    calibrated = no_answer.read_folder(folder)
    if calibrated is not None:
        reader.manifest = {"reader": {"no_answer": calibrated}}
    return _run(reader, squad_path, **options)


def evaluate_package(
    model: models.LoadedModel, squad_path: str | Path, *, limit: int | None = None,
    max_seq_len: int | None = None, doc_stride: int | None = None,
    handle_impossible: bool | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True, settings: Settings | None = None,
) -> ReaderScores:
    """:func:`evaluate_reader` for a model package as the workers run it (traced reader,
    int8 if it was pushed so)."""
    return _run(model, squad_path, limit=limit, max_seq_len=max_seq_len,
                doc_stride=doc_stride, handle_impossible=handle_impossible,
                batch_size=batch_size, progress=progress, settings=settings)
