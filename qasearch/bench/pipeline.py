"""The usual alternative, made fair: a warm ``transformers`` QA pipeline, same reader weights.

The reader is rebuilt from its source the way ``qasearch model push`` built it
(:func:`loaders.model_push.load_reader`; the offline MiniLM reader's QA head is
seeded, so the weights are the same), and its weights digest is compared with
the served package's: the report says whether they are identical. It runs eager
PyTorch on the same number of threads as the floor, with the same ``max_seq_len``,
``doc_stride``, ``max_answer_len``, question cap and batch size as the system,
already warm, over

* (i) the very passages the system reads for each question, and
* (ii) every passage of the corpus (what one does without retrieval).

It tokenises the passages on every call: that is part of what it costs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qasearch.bench.timing import Summary
from qasearch.core.settings import Settings


class PipelineUnavailable(RuntimeError):
    """The reader's checkpoint cannot be rebuilt here; the message says what to pass."""


@dataclass
class PipelineReader:
    qa: object
    source: str
    weights_identical: bool
    note: str

    def ask(self, question: str, contexts: Sequence[str], settings: Settings) -> list:
        return self.qa(
            question=[question] * len(contexts), context=list(contexts), top_k=1,
            max_seq_len=settings.max_seq_len, doc_stride=settings.doc_stride,
            max_answer_len=settings.max_answer_len,
            max_question_len=settings.max_question_tokens,
            batch_size=settings.max_batch_size,
        )


def load(
    manifest: dict, threads: int, settings: Settings, model_dir: str | None = None
) -> PipelineReader:
    """A warm pipeline with the served reader's weights (or those of ``model_dir``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import pipeline

    from loaders import model_push

    source = model_dir or manifest.get("source", "")
    if model_dir:
        model, tokenizer, _ = model_push.load_reader(model_dir)
    elif source == "offline-minilm":
        model, tokenizer, _ = model_push.load_reader(None, offline_minilm=True)
    elif source and model_push.is_local(source):
        model, tokenizer, _ = model_push.load_reader(source)
    else:
        raise PipelineUnavailable(
            f"the served reader came from {source!r}, which is not a folder here; "
            "pass --pipeline-model DIR (the checkpoint folder) or --skip-pipeline"
        )
    reader_cfg = manifest["reader"]
    digest = model_push.weights_digest(
        model, quantized=reader_cfg.get("quantized"), inputs=reader_cfg.get("inputs"),
        role="reader",
    )
    identical = digest == manifest.get("digests", {}).get("reader")
    note = "same weights as the served package (digest verified)" if identical else (
        "WEIGHTS DIFFER from the served package (digest mismatch): speed is comparable only "
        "if the architecture is the same"
    )
    if reader_cfg.get("quantized"):
        note += f"; the system's reader is {reader_cfg['quantized']}, the pipeline runs fp32"
    torch.set_num_threads(max(1, threads))
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device=-1)
    reader = PipelineReader(qa, source, identical, note)
    reader.ask("warm up?", ["A warm-up passage for the pipeline."] * 2, settings)
    return reader


@dataclass
class PipelineRun:
    label: str
    timings_ms: list[float]
    contexts_per_question: float
    stopped_early: bool = False

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "latency": Summary.of(self.timings_ms).as_dict() if self.timings_ms else None,
            "contexts_per_question": self.contexts_per_question,
            "questions_per_s": (1000.0 / Summary.of(self.timings_ms).mean_ms
                                if self.timings_ms else None),
            "stopped_early": self.stopped_early,
        }


def measure(
    reader: PipelineReader, label: str, work: Sequence[tuple[str, Sequence[str]]],
    settings: Settings, max_seconds: float, log: Callable[[str], None] = print,
) -> PipelineRun:
    """Time ``reader.ask`` on each (question, contexts), one after another."""
    timings = []
    stop_at = time.monotonic() + max_seconds
    stopped = False
    for question, contexts in work:
        if timings and time.monotonic() > stop_at:
            stopped = True
            log(f"  pipeline {label}: time limit reached after {len(timings)} questions")
            break
        started = time.perf_counter()
        reader.ask(question, contexts, settings)
        timings.append((time.perf_counter() - started) * 1000.0)
    per_q = sum(len(c) for _, c in work[: len(timings)]) / max(1, len(timings))
    return PipelineRun(label, timings, per_q, stopped)
