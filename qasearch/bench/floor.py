"""The floor: the system's own forward passes, run in-process with nothing around them.

For each question: embed it with the served embedder (as the gateway does), pick
the passages every node's worker would read (:class:`CorpusSnapshot`), build the
same windows and the same padded batches the worker's batcher forms at c=1 (per
node, sorted by length as the worker submits them, ``max_batch_size`` windows
each, padded to the worker's length buckets), and run the reader on them one after
another. Only the embedder call and the reader calls count towards the floor;
retrieval, window building and span decoding are timed apart (``prep_ms``,
``decode_ms``) to show what else costs CPU.

Best-case throughput: every window of all the questions, sorted by length so that
batches waste the least padding, in batches of ``max_batch_size``; plus one batched
embedder call for all the questions. Questions per second = questions / both times.
(:mod:`qasearch.bench.floor_parallel` runs the same batches in the system's
process layout.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gears import reader
from qasearch.bench.snapshot import CorpusSnapshot, StoredPassage
from qasearch.bench.timing import Summary
from qasearch.core.settings import Settings


@dataclass
class QuestionFloor:
    question: str
    passages: list[StoredPassage]
    windows: int
    batches: int
    padded_tokens: int
    embed_ms: float
    reader_ms: float
    prep_ms: float
    decode_ms: float

    @property
    def floor_ms(self) -> float:
        return self.embed_ms + self.reader_ms


def length_order(windows: Sequence[reader.Window]) -> list[int]:
    """The order the worker submits one request's windows in (gears.engine: by length)."""
    return sorted(range(len(windows)), key=lambda i: len(windows[i]))


def node_batches(windows: Sequence[reader.Window], settings: Settings) -> list[tuple]:
    """Padded batches of ``windows`` in the given order, as the batcher forms them at c=1."""
    size = settings.max_batch_size
    return [reader.pad_batch(windows[i : i + size], settings.length_bucket_tokens)
            for i in range(0, len(windows), size)]


def plan(model, snapshot: CorpusSnapshot, question: str, embedding: np.ndarray,
         settings: Settings) -> list[tuple[list, list[StoredPassage], list[reader.Window]]]:
    """Per node: (windows of each passage, passages, all windows in order)."""
    jobs = []
    for passages in snapshot.candidates(question, embedding, settings):
        per_passage = [snapshot.windows(model, question, [p], settings) for p in passages]
        jobs.append((per_passage, passages, [w for ws in per_passage for w in ws]))
    return jobs


def run_question(model, snapshot: CorpusSnapshot, question: str,
                 settings: Settings) -> QuestionFloor:
    t0 = time.perf_counter()
    embedding = model.embed([question])[0]
    t1 = time.perf_counter()
    jobs = []
    for per_passage, passages, flat in plan(model, snapshot, question, embedding, settings):
        order = length_order(flat)
        jobs.append((per_passage, passages, node_batches([flat[i] for i in order], settings),
                     order))
    t2 = time.perf_counter()
    logits = []
    for _, _, batches, _ in jobs:
        for batch in batches:
            logits.append(model.reader_logits(*batch))
    t3 = time.perf_counter()
    _decode_all(jobs, logits, settings)
    t4 = time.perf_counter()
    batches = [b for _, _, bs, _ in jobs for b in bs]
    return QuestionFloor(
        question=question,
        passages=[p for _, ps, _, _ in jobs for p in ps],
        windows=sum(len(b[0]) for b in batches),
        batches=len(batches),
        padded_tokens=int(sum(b[0].size for b in batches)),
        embed_ms=(t1 - t0) * 1000.0, reader_ms=(t3 - t2) * 1000.0,
        prep_ms=(t2 - t1) * 1000.0, decode_ms=(t4 - t3) * 1000.0,
    )


def _decode_all(jobs, logits, settings: Settings) -> None:
    """Span decoding as the worker does it (timed apart from the floor)."""
    sorted_rows = iter([(s[i], e[i]) for s, e in logits for i in range(s.shape[0])])
    for windows_per_passage, passages, _, order in jobs:
        in_node_order: list = [None] * len(order)
        for i in order:
            in_node_order[i] = next(sorted_rows)
        rows = iter(in_node_order)
        for windows, p in zip(windows_per_passage, passages):
            part = [next(rows) for _ in windows]
            reader.decode(windows, [s for s, _ in part], [e for _, e in part], p.text,
                          p.tokens.offsets, top_k=1, max_answer_len=settings.max_answer_len)


@dataclass
class FloorLatency:
    runs: list[QuestionFloor]

    def as_dict(self) -> dict:
        def summary(values: list[float]) -> dict:
            return Summary.of(values).as_dict()

        return {
            "questions": len(self.runs),
            "floor_ms": summary([r.floor_ms for r in self.runs]),
            "embed_ms": summary([r.embed_ms for r in self.runs]),
            "reader_ms": summary([r.reader_ms for r in self.runs]),
            "prep_ms": summary([r.prep_ms for r in self.runs]),
            "decode_ms": summary([r.decode_ms for r in self.runs]),
            "passages_per_question": float(np.mean([len(r.passages) for r in self.runs])),
            "windows_per_question": float(np.mean([r.windows for r in self.runs])),
            "batches_per_question": float(np.mean([r.batches for r in self.runs])),
            "padded_tokens_per_question": float(np.mean([r.padded_tokens for r in self.runs])),
        }


def measure_latency(
    model, snapshot: CorpusSnapshot, questions: Sequence[str], settings: Settings,
    warmup: int = 2, max_seconds: float = 600, log: Callable[[str], None] = print,
) -> FloorLatency:
    """The floor of each question, one after another (after ``warmup`` untimed ones)."""
    for q in questions[:warmup]:
        run_question(model, snapshot, q, settings)
    runs = []
    stop_at = time.monotonic() + max_seconds
    for q in questions:
        if time.monotonic() > stop_at:
            log(f"  floor: time limit reached after {len(runs)} questions")
            break
        runs.append(run_question(model, snapshot, q, settings))
    if not runs:
        raise RuntimeError("the floor measured no question")
    return FloorLatency(runs)


@dataclass
class FloorThroughput:
    questions: int
    windows: int
    batches: int
    embed_s: float
    reader_s: float

    @property
    def questions_per_s(self) -> float:
        total = self.embed_s + self.reader_s
        return self.questions / total if total > 0 else 0.0

    def as_dict(self) -> dict:
        return {"questions": self.questions, "windows": self.windows, "batches": self.batches,
                "embed_s": self.embed_s, "reader_s": self.reader_s,
                "questions_per_s": self.questions_per_s}


def best_case_batches(model, snapshot: CorpusSnapshot, questions: Sequence[str],
                      settings: Settings) -> list[tuple]:
    """All windows of all ``questions``, length-sorted, padded into full batches."""
    windows: list[reader.Window] = []
    for q, emb in zip(questions, model.embed(list(questions))):
        for passages in snapshot.candidates(q, emb, settings):
            windows.extend(snapshot.windows(model, q, passages, settings))
    windows.sort(key=len)
    return node_batches(windows, settings)


def measure_throughput(
    model, questions: Sequence[str], batches: Sequence[tuple]
) -> FloorThroughput:
    """Best case in this process: one batched embedder call for all the questions, then
    the reader over ``batches`` (from :func:`best_case_batches`)."""
    t0 = time.perf_counter()
    model.embed(list(questions))
    t1 = time.perf_counter()
    for batch in batches:
        model.reader_logits(*batch)
    t2 = time.perf_counter()
    windows = sum(int(b[0].shape[0]) for b in batches)
    return FloorThroughput(len(questions), windows, len(batches), t1 - t0, t2 - t1)


@dataclass
class PaddingCost:
    """The reader on the same batches padded two ways: the worker's buckets, or tight
    (each batch exactly as long as its longest window, as the HF pipeline pads)."""

    questions: int
    bucket_ms: float  # mean reader time per question
    tight_ms: float
    bucket_tokens: float  # mean padded tokens per question
    tight_tokens: float

    def as_dict(self) -> dict:
        return {"questions": self.questions, "bucket_ms": self.bucket_ms,
                "tight_ms": self.tight_ms, "bucket_tokens": self.bucket_tokens,
                "tight_tokens": self.tight_tokens,
                "bucket_over_tight": self.bucket_ms / self.tight_ms if self.tight_ms else None}


def measure_padding(model, snapshot: CorpusSnapshot, questions: Sequence[str],
                    settings: Settings) -> PaddingCost:
    """What the length buckets cost: each question's batches run padded to the bucket and
    padded to the batch's longest window, alternately (so both see the same noise)."""
    totals = {"bucket": 0.0, "tight": 0.0}
    tokens = {"bucket": 0, "tight": 0}
    for q in questions:
        flats = [flat for _, _, flat in plan(model, snapshot, q, model.embed([q])[0], settings)]
        for flat in flats:
            flat = [flat[i] for i in length_order(flat)]
            for i in range(0, len(flat), settings.max_batch_size):
                chunk = flat[i : i + settings.max_batch_size]
                for name, multiple in (("bucket", settings.length_bucket_tokens), ("tight", 1)):
                    batch = reader.pad_batch(chunk, multiple)
                    started = time.perf_counter()
                    model.reader_logits(*batch)
                    totals[name] += (time.perf_counter() - started) * 1000.0
                    tokens[name] += int(batch[0].size)
    n = max(1, len(questions))
    return PaddingCost(len(questions), totals["bucket"] / n, totals["tight"] / n,
                       tokens["bucket"] / n, tokens["tight"] / n)
