"""Answer one question on one node: retrieve, then read (through the cache), then rank.

Everything here reads only the worker's own node: the partition indexes in
memory, and passages and their tensors through the node client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gears.engine import AnswerEngine, ReadItem
from gears.retrieval import PartitionIndex
from qasearch import codec, keys
from qasearch.partitions import partition_tag


@dataclass(frozen=True)
class Question:
    text: str
    embedding: np.ndarray
    top_k: int
    num_results: int
    use_cache: bool = True


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


def answer_question(
    engine: AnswerEngine, model, indexes: Mapping[int, PartitionIndex], question: Question
) -> dict:
    """The node's best answers, best first, plus what it cost."""
    started = time.perf_counter()
    candidates = retrieve(indexes, question.embedding, question.top_k)
    pipe = engine.client.pipeline(transaction=False)
    for c in candidates:
        tag = partition_tag(c.partition)
        pipe.hmget(keys.passage(tag, c.pid), ["text", "title", "doc_id"])
        pipe.hmget(keys.tensors(tag, c.pid), ["ids", "offsets"])
    raw = pipe.execute()
    normalised = keys.normalize_question(question.text)

    found = []  # (candidate, title, doc_id, read item)
    for i, cand in enumerate(candidates):
        (text, title, doc_id), (ids, offsets) = raw[2 * i], raw[2 * i + 1]
        if text is None or ids is None:
            continue  # deleted, or not yet tokenised: nothing to read
        tag = partition_tag(cand.partition)
        item = ReadItem(tag, cand.pid, normalised, text.decode(), codec.decode(ids),
                        codec.decode(offsets))
        found.append((cand, (title or b"").decode(), (doc_id or b"").decode(), item))

    values = engine.answers(model, [f[3] for f in found], use_cache=question.use_cache)
    answers = []
    for (cand, title, doc_id, item), value in zip(found, values):
        if value is None:
            continue
        answers.append({
            "answer": value["answer"], "score": value["score"],
            "start": value["start"], "end": value["end"],
            "sentence": item.text, "sentencekey": keys.passage(item.tag, item.pid),
            "title": title, "doc_id": doc_id, "partition": item.tag,
            "similarity": cand.similarity, "answerkey": item.key,
        })
    answers.sort(key=lambda a: a["score"], reverse=True)
    return {
        "answers": answers[: question.num_results],
        "passages_read": len(found),
        "took_ms": (time.perf_counter() - started) * 1000.0,
    }
