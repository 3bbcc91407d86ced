"""Write documents into the cluster, one atomic transaction per partition batch.

For each document, on its partition's node and inside one MULTI/EXEC (legal in
cluster mode because every key carries the partition's hash tag):

* ``HSET keys.passage``, ``SADD keys.passage_index`` and an ``op=set`` entry on
  ``keys.ingest_stream`` for every passage that is new or changed (the node's
  worker pre-tokenises and embeds it from there);
* for chunks an earlier version of the document had and this one has not:
  ``DEL`` passage and tensors, ``SREM`` and an ``op=del`` ingest entry;
* ``HSET keys.document`` with the passage count.

Unchanged passages are not rewritten, so loading the same file again is cheap and
asks the workers for nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from redis.cluster import RedisCluster

from loaders.documents import Document, LoadError
from loaders.splitter import Passage, split_document
from qasearch import keys
from qasearch.partitions import partition_for_doc, partition_tag
from qasearch.topology import masters

BATCH_DOCUMENTS = 64
INGEST_MAXLEN = 1_000_000


@dataclass
class LoadSummary:
    documents: int = 0
    passages: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    partitions: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def passages_per_second(self) -> float:
        return self.passages / self.seconds if self.seconds > 0 else 0.0


def corpus_partitions(client: RedisCluster, settings) -> int:
    """The corpus's partition count, fixed when it is first loaded (8 per master by default)."""
    wanted = len(masters(settings)) * settings.partitions_per_master
    client.hsetnx(keys.CORPUS_META, "partitions", wanted)
    return int(client.hget(keys.CORPUS_META, "partitions"))


def _write_partition(
    client: RedisCluster, tag: str, docs: list[tuple[Document, list[Passage]]], summary: LoadSummary
) -> None:
    node = client.get_redis_connection(client.get_node_from_key(keys.passage_index(tag)))
    # Read what is there, to write only what changed.
    probe = node.pipeline(transaction=False)
    for doc, passages in docs:
        probe.hget(keys.document(tag, doc.doc_id), "passages")
        for p in passages:
            probe.hmget(keys.passage(tag, keys.passage_id(doc.doc_id, p.chunk)), ["text", "title"])
    found = iter(probe.execute())

    tx = node.pipeline(transaction=True)
    for doc, passages in docs:
        old_count = int(next(found) or 0)
        for p in passages:
            pid = keys.passage_id(doc.doc_id, p.chunk)
            old_text, old_title = next(found)
            if old_text == p.text.encode() and (old_title or b"") == doc.title.encode():
                summary.unchanged += 1
                continue
            tx.hset(keys.passage(tag, pid), mapping={
                "text": p.text, "title": doc.title, "doc_id": doc.doc_id,
                "source": doc.source, "chunk": p.chunk, "char_start": p.char_start,
            })
            tx.sadd(keys.passage_index(tag), pid)
            tx.xadd(keys.ingest_stream(tag), {"op": "set", "pid": pid},
                    maxlen=INGEST_MAXLEN, approximate=True)
            summary.written += 1
        for chunk in range(len(passages), old_count):
            pid = keys.passage_id(doc.doc_id, chunk)
            tx.delete(keys.passage(tag, pid), keys.tensors(tag, pid))
            tx.srem(keys.passage_index(tag), pid)
            tx.xadd(keys.ingest_stream(tag), {"op": "del", "pid": pid},
                    maxlen=INGEST_MAXLEN, approximate=True)
            summary.deleted += 1
        tx.hset(keys.document(tag, doc.doc_id),
                mapping={"passages": len(passages), "source": doc.source})
    tx.execute()


def write_documents(
    client: RedisCluster,
    settings,
    documents: Iterable[Document],
    tokenizer,
    on_progress: Callable[[int, int], None] | None = None,
) -> LoadSummary:
    """Split and write ``documents``; on a :class:`LoadError` the documents read before
    it are written, the error is given the counts, and it is raised again."""
    started = time.perf_counter()
    summary = LoadSummary()
    partitions = corpus_partitions(client, settings)
    batch: dict[str, list[tuple[Document, list[Passage]]]] = defaultdict(list)
    pending = 0

    def flush() -> None:
        nonlocal pending
        for tag, docs in batch.items():
            _write_partition(client, tag, docs, summary)
            summary.partitions.add(tag)
            summary.documents += len(docs)
            summary.passages += sum(len(p) for _, p in docs)
        if on_progress and pending:
            on_progress(pending, sum(len(p) for docs in batch.values() for _, p in docs))
        batch.clear()
        pending = 0

    try:
        for doc in documents:
            passages = split_document(doc.text, settings.max_passage_tokens, tokenizer)
            tag = partition_tag(partition_for_doc(doc.doc_id, partitions))
            batch[tag].append((doc, passages))
            pending += 1
            if pending >= BATCH_DOCUMENTS:
                flush()
        flush()
    except LoadError as exc:
        flush()
        exc.documents_loaded, exc.passages_loaded = summary.documents, summary.passages
        raise
    finally:
        summary.seconds = time.perf_counter() - started
        if summary.written or summary.deleted:
            client.hincrby(keys.CORPUS_META, "version", 1)
    return summary
