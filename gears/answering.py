"""Answer one question on one node: retrieve, read in batches, decode, rank.

Everything here reads only the worker's own node: the partition indexes in
memory, and passages and their tensors through the node client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import redis

from gears import reader
from gears.batcher import DynamicBatcher
from gears.retrieval import PartitionIndex
from qasearch import codec, keys
from qasearch.partitions import partition_tag
from qasearch.settings import Settings


@dataclass(frozen=True)
class Question:
    text: str
    embedding: np.ndarray
    top_k: int
    num_results: int


@dataclass(frozen=True)
class Candidate:
    partition: int
    pid: str
    similarity: float


def retrieve(
    indexes: Mapping[int, PartitionIndex], embedding: np.ndarray, top_k: int
) -> list[Candidate]:
    """The ``top_k`` most similar passages of every partition."""
    found = []
    for part, index in indexes.items():
        found.extend(Candidate(part, pid, sim) for pid, sim in index.top_k(embedding, top_k))
    return found


def _fetch(client: redis.Redis, candidates: list[Candidate]) -> list[tuple[dict, dict]]:
    pipe = client.pipeline(transaction=False)
    for c in candidates:
        tag = partition_tag(c.partition)
        pipe.hmget(keys.passage(tag, c.pid), ["text", "title", "doc_id"])
        pipe.hmget(keys.tensors(tag, c.pid), ["ids", "offsets"])
    raw = pipe.execute()
    return [(raw[2 * i], raw[2 * i + 1]) for i in range(len(candidates))]


def answer_question(
    client: redis.Redis,
    model,
    batcher: DynamicBatcher,
    indexes: Mapping[int, PartitionIndex],
    question: Question,
    settings: Settings,
) -> dict:
    """The node's best answers, best first, plus what it cost."""
    started = time.perf_counter()
    candidates = retrieve(indexes, question.embedding, question.top_k)
    rows = _fetch(client, candidates)
    q_ids = model.question_ids(question.text, settings.max_question_tokens)

    jobs = []  # (candidate, passage fields, offsets, windows)
    for cand, (passage, tensors) in zip(candidates, rows):
        text, title, doc_id = (v.decode() if v is not None else None for v in passage)
        if text is None or tensors[0] is None:
            continue  # deleted, or not yet tokenised: nothing to read
        ids = codec.decode(tensors[0])
        offsets = codec.decode(tensors[1])
        windows = reader.build_windows(
            q_ids, ids, offsets, settings.max_seq_len, settings.doc_stride, model.specials
        )
        jobs.append((cand, text, title or "", doc_id or "", offsets, windows))

    flat = [w for job in jobs for w in job[5]]
    logits = batcher.submit(flat).result() if flat else []

    answers = []
    pos = 0
    for cand, text, title, doc_id, offsets, windows in jobs:
        part = logits[pos : pos + len(windows)]
        pos += len(windows)
        best = reader.decode(
            windows,
            [s for s, _ in part],
            [e for _, e in part],
            text,
            offsets,
            top_k=1,
            max_answer_len=settings.max_answer_len,
        )
        if not best:
            continue
        ans = best[0]
        tag = partition_tag(cand.partition)
        answers.append(
            {
                "answer": ans.text,
                "score": float(ans.score),
                "start": int(ans.start),
                "end": int(ans.end),
                "sentence": text,
                "sentencekey": keys.passage(tag, cand.pid),
                "title": title,
                "doc_id": doc_id,
                "partition": tag,
                "similarity": cand.similarity,
            }
        )
    answers.sort(key=lambda a: a["score"], reverse=True)
    return {
        "answers": answers[: question.num_results],
        "passages_read": len(jobs),
        "sequences": len(flat),
        "took_ms": (time.perf_counter() - started) * 1000.0,
    }
