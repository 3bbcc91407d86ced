"""Answer one question on one node: retrieve, then read (through the cache), then rank.

Everything here reads only the worker's own node: the partition indexes in
memory, and passages and their tensors through the node client.

Every read is prefixed with ``ASKING`` (:mod:`gears.asking`), so a partition the
node is importing (copied, not yet switched) reads like an owned one. A partition
whose reads come back redirected has left the node in the middle of the request:
it is left out of the reply's ``served`` list (another node answers for it), so
the gateway sees exactly which partitions this reply covers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gears.asking import AskingPipeline, absent_here, is_redirect
from gears.engine import AnswerEngine, ReadItem
from gears.retrieval import PartitionIndex
from gears.tensorize import READER_FIELDS, made_by, passage_tokens, stored_tokens
from qasearch import keys
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
    engine: AnswerEngine, model, indexes: Mapping[int, PartitionIndex], question: Question,
    unloaded: Sequence[int] = (),
) -> dict:
    """The node's best answers, best first, the partitions they cover, and what it cost.

    ``unloaded`` are partitions whose slot the node owns but which it holds no index
    of: those still without an index set on the node (no document) are empty, and
    count as served.
    """
    started = time.perf_counter()
    parts = sorted(indexes)
    candidates = retrieve(indexes, question.embedding, question.top_k)
    empties = engine.client.pipeline(transaction=False)
    for part in unloaded:  # no ASKING: a slot not (or no longer) ours must fail here
        empties.exists(keys.passage_index(partition_tag(part)))
    empty = [p for p, n in zip(unloaded, empties.execute(raise_on_error=False))
             if n == 0 or absent_here(n)]
    pipe = AskingPipeline(engine.client)
    for part in parts:
        # one probe per partition: a partition without candidates may have left too
        pipe.exists(keys.passage_index(partition_tag(part)))
    for c in candidates:
        tag = partition_tag(c.partition)
        pipe.hmget(keys.passage(tag, c.pid), ["text", "title", "doc_id", "section"])
        pipe.hmget(keys.tensors(tag, c.pid), [*READER_FIELDS, "reader_tok"])
    raw = pipe.execute(raise_on_error=False)
    lost: set[int] = set()
    for part, reply in zip(parts, raw[: len(parts)]):
        if not absent_here(reply):  # an empty partition on its way out is still served here
            _check(reply, part, lost)
    reads = raw[len(parts):]
    for i, cand in enumerate(candidates):
        _check(reads[2 * i], cand.partition, lost)
        _check(reads[2 * i + 1], cand.partition, lost)
    asked = keys.question_form(question.text)  # what the reader reads and the key holds
    own_tok = made_by(model)

    found = []  # (candidate, title, doc_id, section, read item)
    for i, cand in enumerate(candidates):
        if cand.partition in lost:
            continue
        (text, title, doc_id, section), (*fields, tok) = reads[2 * i], reads[2 * i + 1]
        if text is None or fields[0] is None:
            continue  # deleted, or not yet tokenised: nothing to read
        tag = partition_tag(cand.partition)
        if tok == own_tok:
            tokens = stored_tokens(*fields)
        else:  # stored by another tokenizer or layout (a swap in progress): tokenise now
            tokens = passage_tokens(model, text.decode())
        item = ReadItem(tag, cand.pid, asked, text.decode(), tokens)
        found.append((cand, (title or b"").decode(), (doc_id or b"").decode(),
                      (section or b"").decode(), item))

    values = engine.answers(model, [f[4] for f in found], use_cache=question.use_cache)
    answers, read = [], []
    for (cand, title, doc_id, section, item), value in zip(found, values):
        # every passage read, answered or not: the gateway can list them (recall of
        # the retrieval) and take the lowest null score over all of them
        read.append({"doc_id": doc_id, "sentencekey": keys.passage(item.tag, item.pid),
                     "partition": item.tag, "similarity": cand.similarity,
                     "null_score": value.get("null_score") if value else None})
        if value is None:
            continue
        answers.append({
            "answer": value["answer"], "score": value["score"],
            "start": value["start"], "end": value["end"],
            "null_score": value.get("null_score"),  # absent from answers cached before it
            "sentence": item.text, "sentencekey": keys.passage(item.tag, item.pid),
            "title": title, "section": section, "doc_id": doc_id, "partition": item.tag,
            "similarity": cand.similarity, "answerkey": item.key,
        })
    answers.sort(key=lambda a: a["score"], reverse=True)
    return {
        "answers": answers[: question.num_results],
        "served": sorted(partition_tag(p) for p in [*parts, *empty] if p not in lost),
        "passages_read": len(found),
        "read": read,
        "took_ms": (time.perf_counter() - started) * 1000.0,
    }


def _check(reply: object, part: int, lost: set[int]) -> None:
    """A redirected read marks its partition lost; any other error fails the request."""
    if isinstance(reply, Exception):
        if is_redirect(reply):
            lost.add(part)
        else:
            raise reply
