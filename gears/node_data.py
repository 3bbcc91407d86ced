"""A worker's reads and writes of its node's data: passage texts, stored tensors, and
the node's streams read through the workers' consumer group.

Everything here talks to the worker's own node only. Reads of partition data go
with ``ASKING`` (:mod:`gears.asking`), so a partition the node is importing loads
like an owned one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from gears.asking import AskingPipeline
from gears.lexical import LexicalIndex
from gears.retrieval import PartitionIndex
from gears.tensorize import PassageText, embedding_input, made_by, tensorize
from qasearch.core import codec, keys
from qasearch.core.models import LoadedModel
from qasearch.core.partitions import partition_tag

log = logging.getLogger("qasearch.worker")

BATCH = 256  # passages per pipeline (and per tensorize call)
CLAIM_COUNT = 100
MAX_CLAIM_ROUNDS = 1000  # bounds every claim loop: 100,000 entries

Staged = list[tuple[str, dict[str, bytes]]]  # (pid, tensor fields) not yet stored
Apply = Callable[[list[tuple[bytes, dict[bytes, bytes]]]], None]


def passage_texts(client: redis.Redis, part: int, pids: list[str]) -> list[PassageText]:
    """The text and heading (title, section) of each of ``pids`` that still exists."""
    tag = partition_tag(part)
    pipe = AskingPipeline(client)
    for pid in pids:
        pipe.hmget(keys.passage(tag, pid), ["text", "title", "section"])
    found = []
    for pid, (text, title, section) in zip(pids, pipe.execute()):
        if text is not None:
            # the section title is context for retrieval, like the document's title
            heading = "\n".join(v.decode() for v in (title, section) if v)
            found.append(PassageText(pid, text.decode(), heading))
    return found


def build_index(
    client: redis.Redis, part: int, model: LoadedModel
) -> tuple[PartitionIndex, Staged]:
    """A complete dense index of ``part`` for ``model``, and the tensors still to store.

    Stored tensors made by ``model``'s tokenizer and embedder are used as they are;
    the rest are made now (not written: the caller stores them when the index is in
    service, or never, on a replica).
    """
    tag = partition_tag(part)
    pids = sorted(m.decode() for m in
                  AskingPipeline(client).smembers(keys.passage_index(tag)).execute()[0])
    index = PartitionIndex(model.embedding_dim)
    todo = []
    for start in range(0, len(pids), BATCH):
        chunk = pids[start : start + BATCH]
        pipe = AskingPipeline(client)
        for pid in chunk:
            pipe.hmget(keys.tensors(tag, pid), ["emb", "reader_tok", "embedder"])
        for pid, (emb, tok, emb_id) in zip(chunk, pipe.execute()):
            current = (emb is not None and tok == made_by(model)
                       and emb_id == model.embedder_id.encode())
            if current:
                index.upsert(pid, codec.decode(emb))
            else:
                todo.append(pid)
    staged = []
    for start in range(0, len(todo), BATCH):
        passages = passage_texts(client, part, todo[start : start + BATCH])
        for passage, (fields, vector) in zip(passages, tensorize(model, passages)):
            index.upsert(passage.pid, vector)
            staged.append((passage.pid, fields))
    return index, staged


def build_lexical(client: redis.Redis, lexical: LexicalIndex, part: int, pids: list[str]) -> None:
    """Put every passage of ``part`` in the BM25 index, in place of what it held."""
    lexical.drop_partition(part)
    for start in range(0, len(pids), BATCH):
        passages = passage_texts(client, part, pids[start : start + BATCH])
        lexical.upsert_many(part, [(p.pid, embedding_input(p.title, p.text)) for p in passages])
    lexical.refresh()


# Tensors are written only while their passage exists: a loader may delete the
# passage (and its tensors) while the worker is still tensorizing it, and a plain HSET
# afterwards would leave tensors nobody deletes. Both keys carry the partition's tag.
_WRITE_IF_PASSAGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV))
return 1
"""


def write_tensors(client: redis.Redis, part: int, staged: Staged) -> int:
    """Store each passage's tensor fields, atomically skipping passages that are gone
    by now; returns how many were stored."""
    tag = partition_tag(part)
    stored = 0
    for start in range(0, len(staged), BATCH):
        pipe = AskingPipeline(client)
        for pid, fields in staged[start : start + BATCH]:
            flat = [v for pair in fields.items() for v in pair]
            pipe.eval(_WRITE_IF_PASSAGE, 2, keys.passage(tag, pid), keys.tensors(tag, pid), *flat)
        stored += sum(pipe.execute())
    return stored


# --- ingest entries -----------------------------------------------------------
def ingest_changes(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> tuple[list[str], list[str]]:
    """The pids of ingest entries (``op=set|del``, ``pid``): (changed, deleted)."""
    sets: list[str] = []
    dels: list[str] = []
    for _entry_id, fields in entries:
        pid = fields[b"pid"].decode()
        (dels if fields.get(b"op") == b"del" else sets).append(pid)
    return sets, dels


# --- streams read through the workers' group ----------------------------------
def ensure_group(client: redis.Redis, known: set[str], stream: str, start_id: str = "0") -> None:
    """Create the workers' group on ``stream`` unless ``known`` says it exists."""
    if stream in known:
        return
    try:
        client.xgroup_create(stream, keys.WORKER_GROUP, id=start_id, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    known.add(stream)


def read_group(client: redis.Redis, consumer: str, stream: str, start: str,
               apply: Apply) -> int:
    """Apply one batch of the group's entries (``>``: new ones; ``0``: this consumer's
    unacknowledged ones), then acknowledge them; returns how many there were."""
    reply = client.xreadgroup(keys.WORKER_GROUP, consumer, {stream: start}, count=BATCH)
    handled = 0
    for _, entries in reply or []:
        apply([(e, f) for e, f in entries if f])  # None: trimmed away since
        if entries:
            client.xack(stream, keys.WORKER_GROUP, *[e for e, _ in entries])
        handled += len(entries)
    return handled


def adopt_pending(client: redis.Redis, consumer: str, stream: str, apply: Apply) -> int:
    """Apply the entries other consumers (dead workers: the previous master's, on a
    promotion) read but never acknowledged; returns how many."""
    start = "0-0"
    for _ in range(MAX_CLAIM_ROUNDS):
        reply = client.xautoclaim(stream, keys.WORKER_GROUP, consumer, min_idle_time=0,
                                  start_id=start, count=CLAIM_COUNT)
        start = reply[0]  # [next start, claimed entries, ...]: they are read below
        if start in (b"0-0", "0-0"):
            break
    handled = 0
    for _ in range(MAX_CLAIM_ROUNDS):
        done = read_group(client, consumer, stream, "0", apply)
        handled += done
        if not done:
            break
    return handled


def claim_orphans(client: redis.Redis, consumer: str, stream: str,
                  submit: Callable[[bytes, dict[bytes, bytes]], object]) -> None:
    """Take over requests a dead worker (another consumer) left pending, then forget it.

    Each is handed to ``submit`` (answered, or failed explicitly if its deadline has
    passed), so no request that reached the stream is lost.
    """
    for info in client.xinfo_consumers(stream, keys.WORKER_GROUP):
        name = info["name"]
        name = name.decode() if isinstance(name, bytes) else name
        if name == consumer:
            continue
        start = "0-0"
        for _ in range(MAX_CLAIM_ROUNDS if info["pending"] else 0):
            reply = client.xautoclaim(stream, keys.WORKER_GROUP, consumer, min_idle_time=0,
                                      start_id=start, count=CLAIM_COUNT)
            start, entries = reply[0], reply[1]
            for entry_id, fields in entries:
                if fields:  # None when the entry was trimmed away
                    log.info("claimed request %s left by %s", entry_id, name)
                    submit(entry_id, fields)
            if start in (b"0-0", "0-0"):
                break
        client.xgroup_delconsumer(stream, keys.WORKER_GROUP, name)
