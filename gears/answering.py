"""Answer one question on one node, in the two phases the gateway asks for.

Phase 1, :func:`find_candidates`: the node's best passages for the question by
dense similarity (the partition indexes in memory) and by BM25 (the node's
lexical index), with both scores, and the partitions this reply covers. Nothing
is read from Redis but one probe per partition.

Phase 2, :func:`read_passages`: the passages the gateway chose among every
node's candidates, read through the answer cache (a batched reader pass for the
misses), each with its best span and its null score.

Everything here reads only the worker's own node. Every read is prefixed with
``ASKING`` (:mod:`gears.asking`), so a partition the node is importing (copied,
not yet switched) reads like an owned one. A partition whose reads come back
redirected has left the node in the middle of the request: phase 1 leaves it
out of ``served`` (another node answers for it), phase 2 returns it as ``lost``
(the gateway asks its new owner).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gears.asking import AskingPipeline, absent_here, is_redirect
from gears.engine import AnswerEngine, ReadItem
from gears.lexical import LexicalIndex
from gears.retrieval import PartitionIndex
from gears.tensorize import READER_FIELDS, made_by, passage_tokens, stored_tokens
from qasearch.core import keys
from qasearch.core.partitions import partition_index, partition_tag


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


def dense_top(
    indexes: Mapping[int, PartitionIndex], embedding: np.ndarray, depth: int
) -> list[Candidate]:
    """The node's ``depth`` most similar passages over all its partitions, best first."""
    return heapq.nlargest(depth, retrieve(indexes, embedding, depth),
                          key=lambda c: c.similarity)


def node_candidates(
    indexes: Mapping[int, PartitionIndex], lexical: LexicalIndex | None, question: str,
    embedding: np.ndarray, depth: int,
) -> dict[tuple[int, str], dict]:
    """{(partition, pid): {"dense", "lexical"}} of the ``depth`` best by each score.

    Each candidate has its cosine ``dense`` similarity and its BM25 ``lexical``
    score (None when BM25 did not place it in the node's top ``depth``: the terms
    are absent, or others match better).
    """
    found: dict[tuple[int, str], dict] = {}
    for cand in dense_top(indexes, embedding, depth):
        found[(cand.partition, cand.pid)] = {"dense": cand.similarity, "lexical": None}
    if lexical is not None:
        for part, pid, score in lexical.search(question, depth, partitions=sorted(indexes)):
            entry = found.get((part, pid))
            if entry is None:
                index = indexes.get(part)
                similarity = index.similarity(embedding, pid) if index is not None else None
                if similarity is None:
                    continue  # not in the dense index (yet): it cannot be read either
                entry = found[(part, pid)] = {"dense": similarity, "lexical": None}
            entry["lexical"] = score
    return found


def find_candidates(
    engine: AnswerEngine, indexes: Mapping[int, PartitionIndex], lexical: LexicalIndex | None,
    question: str, embedding: np.ndarray, depth: int, unloaded: Sequence[int] = (),
) -> dict:
    """Phase 1: the node's ``depth`` best passages by each retrieval score
    (:func:`node_candidates`), and the partitions they cover. ``unloaded`` are
    partitions whose slot the node owns but which it holds no index of: those still
    without an index set on the node (no document) are empty, and count as served.
    """
    started = time.perf_counter()
    parts = sorted(indexes)
    found = node_candidates(indexes, lexical, question, embedding, depth)
    empties = engine.client.pipeline(transaction=False)
    for part in unloaded:  # no ASKING: a slot not (or no longer) ours must fail here
        empties.exists(keys.passage_index(partition_tag(part)))
    empty = [p for p, n in zip(unloaded, empties.execute(raise_on_error=False))
             if n == 0 or absent_here(n)]
    pipe = AskingPipeline(engine.client)
    for part in parts:  # one probe per partition: it may have left the node
        pipe.exists(keys.passage_index(partition_tag(part)))
    lost: set[int] = set()
    for part, reply in zip(parts, pipe.execute(raise_on_error=False)):
        if not absent_here(reply):  # an empty partition on its way out is still served here
            _check(reply, part, lost)
    return {
        "candidates": [
            {"partition": partition_tag(part), "pid": pid, **scores}
            for (part, pid), scores in found.items() if part not in lost
        ],
        "served": sorted(partition_tag(p) for p in [*parts, *empty] if p not in lost),
        "took_ms": (time.perf_counter() - started) * 1000.0,
    }


def read_passages(
    engine: AnswerEngine, model, question: str, wanted: Sequence[dict], use_cache: bool = True,
) -> dict:
    """Phase 2: read each passage of ``wanted`` (``{"partition": tag, "pid"}``).

    Returns every passage read with its best span (``answer`` None when the reader
    finds none), its null score and what the passage is; ``lost`` lists the
    partitions whose reads were redirected (they left the node), and passages
    deleted since phase 1 are simply not in ``read``.
    """
    started = time.perf_counter()
    pipe = AskingPipeline(engine.client)
    for want in wanted:
        pipe.hmget(keys.passage(want["partition"], want["pid"]),
                   ["text", "title", "doc_id", "section"])
        pipe.hmget(keys.tensors(want["partition"], want["pid"]), [*READER_FIELDS, "reader_tok"])
    raw = pipe.execute(raise_on_error=False)
    lost: set[int] = set()
    for i, want in enumerate(wanted):
        for reply in raw[2 * i : 2 * i + 2]:
            _check(reply, partition_index(want["partition"]), lost)
    asked = keys.question_form(question)  # what the reader reads and the key holds
    own_tok = made_by(model)

    found = []  # (title, doc_id, section, read item)
    for i, want in enumerate(wanted):
        if partition_index(want["partition"]) in lost:
            continue
        (text, title, doc_id, section), (*fields, tok) = raw[2 * i], raw[2 * i + 1]
        if text is None or fields[0] is None:
            continue  # deleted, or not yet tokenised: nothing to read
        if tok == own_tok:
            tokens = stored_tokens(*fields)
        else:  # stored by another tokenizer or layout (a swap in progress): tokenise now
            tokens = passage_tokens(model, text.decode())
        item = ReadItem(want["partition"], want["pid"], asked, text.decode(), tokens)
        found.append(((title or b"").decode(), (doc_id or b"").decode(),
                      (section or b"").decode(), item))

    values = engine.answers(model, [f[3] for f in found], use_cache=use_cache)
    read = []
    for (title, doc_id, section, item), value in zip(found, values):
        value = value or {}
        read.append({
            "partition": item.tag, "pid": item.pid, "doc_id": doc_id, "title": title,
            "section": section, "sentence": item.text,
            "sentencekey": keys.passage(item.tag, item.pid), "answerkey": item.key,
            "answer": value.get("answer"), "score": value.get("score"),
            "start": value.get("start"), "end": value.get("end"),
            "null_score": value.get("null_score"),  # absent from answers cached before it
        })
    return {
        "read": read,
        "lost": sorted(partition_tag(p) for p in lost),
        "took_ms": (time.perf_counter() - started) * 1000.0,
    }


def _check(reply: object, part: int, lost: set[int]) -> None:
    """A redirected read marks its partition lost; any other error fails the request."""
    if isinstance(reply, Exception):
        if is_redirect(reply):
            lost.add(part)
        else:
            raise reply
