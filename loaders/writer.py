"""Write documents into the cluster, atomically per document.

Documents are batched by partition; each partition batch is one MULTI/EXEC on the
partition's node (legal in cluster mode because every key carries the partition's
hash tag), so a document is either wholly written or not at all. Per document:

* ``HSET keys.passage``, ``SADD keys.passage_index`` and an ``op=set`` entry on
  ``keys.ingest_stream`` for every passage that is new or whose text or title
  changed (the node's worker pre-tokenises and embeds it from there);
* only ``HSET`` of the changed fields when just ``char_start`` or ``source`` moved:
  the tensors do not depend on them, so the workers are not asked to redo anything;
* for chunks an earlier version of the document had and this one has not:
  ``DEL`` passage and tensors, ``SREM`` and an ``op=del`` ingest entry;
* ``HSET keys.document`` with the passage count.

After the EXEC, ``HINCRBY`` of ``keys.CORPUS_RECORDED`` in ``keys.CORPUS_META`` by
the passages it added minus those it removed: another slot, so not in the
transaction. A loader that dies between the two leaves the record short, never
long, so a record above what the index holds means acknowledged passages were lost.

Unchanged passages are not rewritten, so loading the same file again is cheap and
asks the workers for nothing; the corpus ``version`` is bumped only when something
changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from tokenizers import Tokenizer

from loaders.documents import Document, LoadError
from loaders.splitter import Passage, split_document
from qasearch import keys
from qasearch.partitions import partition_for_doc, partition_tag
from qasearch.settings import Settings
from qasearch.topology import masters

BATCH_DOCUMENTS = 64
INGEST_MAXLEN = 1_000_000  # approximate trimming; a worker also reconciles from the index on start

Batch = dict[str, list[tuple[Document, list[Passage]]]]


class LoadInterrupted(RuntimeError):
    """The cluster failed in the middle of a load: ``documents`` documents and ``passages``
    passages were written (each document whole) before ``cause``; none after it."""

    def __init__(self, cause: Exception, documents: int, passages: int) -> None:
        super().__init__(f"{cause} ({documents} documents, {passages} passages written "
                         "before it)")
        self.cause, self.documents, self.passages = cause, documents, passages


@dataclass
class LoadSummary:
    documents: int = 0
    passages: int = 0
    written: int = 0  # passages new or changed (each one ingest entry)
    unchanged: int = 0
    deleted: int = 0  # stale chunks of shorter new versions
    partitions: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def passages_per_second(self) -> float:
        return self.passages / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Counts:
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    added: int = 0  # of the written, those not in the index before


def corpus_partitions(client: RedisCluster, settings: Settings) -> int:
    """The corpus's partition count, fixed when it is first loaded (8 per master by default)."""
    found = client.hget(keys.CORPUS_META, "partitions")
    if found is None:
        wanted = len(masters(settings)) * settings.partitions_per_master
        client.hsetnx(keys.CORPUS_META, "partitions", wanted)
        found = client.hget(keys.CORPUS_META, "partitions")  # another loader may have won
    return int(found)


def _bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _write_partition(
    client: RedisCluster, tag: str, docs: list[tuple[Document, list[Passage]]]
) -> _Counts:
    node = client.get_redis_connection(client.get_node_from_key(keys.passage_index(tag)))
    fields = ["text", "title", "char_start", "source"]
    # Read what is there, to write only what changed.
    probe = node.pipeline(transaction=False)
    for doc, passages in docs:
        probe.hget(keys.document(tag, doc.doc_id), "passages")
        for p in passages:
            probe.hmget(keys.passage(tag, keys.passage_id(doc.doc_id, p.chunk)), fields)
    found = iter(probe.execute())

    counts = _Counts()
    tx = node.pipeline(transaction=True)
    for doc, passages in docs:
        old_count = int(next(found) or 0)
        for p in passages:
            pid = keys.passage_id(doc.doc_id, p.chunk)
            old_text, old_title, old_start, old_source = (_bytes(v) for v in next(found))
            if old_text == p.text.encode() and (old_title or b"") == doc.title.encode():
                counts.unchanged += 1
                if old_start != str(p.char_start).encode() or old_source != doc.source.encode():
                    tx.hset(keys.passage(tag, pid),
                            mapping={"char_start": p.char_start, "source": doc.source})
                continue
            tx.hset(keys.passage(tag, pid), mapping={
                "text": p.text, "title": doc.title, "doc_id": doc.doc_id,
                "source": doc.source, "chunk": p.chunk, "char_start": p.char_start,
            })
            tx.sadd(keys.passage_index(tag), pid)
            if old_text is None:
                counts.added += 1
            tx.xadd(keys.ingest_stream(tag), {"op": "set", "pid": pid},
                    maxlen=INGEST_MAXLEN, approximate=True)
            counts.written += 1
        for chunk in range(len(passages), old_count):
            pid = keys.passage_id(doc.doc_id, chunk)
            tx.delete(keys.passage(tag, pid), keys.tensors(tag, pid))
            tx.srem(keys.passage_index(tag), pid)
            tx.xadd(keys.ingest_stream(tag), {"op": "del", "pid": pid},
                    maxlen=INGEST_MAXLEN, approximate=True)
            counts.deleted += 1
        tx.hset(keys.document(tag, doc.doc_id),
                mapping={"passages": len(passages), "source": doc.source})
    tx.execute()
    if counts.added != counts.deleted:
        client.hincrby(keys.CORPUS_META, keys.CORPUS_RECORDED, counts.added - counts.deleted)
    return counts


def write_documents(
    client: RedisCluster,
    settings: Settings,
    documents: Iterable[Document],
    tokenizer: Tokenizer,
    on_progress: Callable[[int, int], None] | None = None,
) -> LoadSummary:
    """Split ``documents`` into passages of at most ``settings.max_passage_tokens`` tokens
    and write them; ``on_progress(documents, passages)`` is called after every batch.

    On a :class:`LoadError` from the reader the documents read before it are written,
    the error is given the counts (``loaded``, ``passages_loaded``) and raised again. A
    cluster error while writing becomes :class:`LoadInterrupted` with what was written.
    """
    started = time.perf_counter()
    summary = LoadSummary()
    partitions = corpus_partitions(client, settings)
    batch: Batch = {}
    in_batch: set[str] = set()

    def flush() -> None:
        for tag, docs in batch.items():
            counts = _write_partition(client, tag, docs)
            summary.written += counts.written
            summary.unchanged += counts.unchanged
            summary.deleted += counts.deleted
            summary.partitions.add(tag)
            summary.documents += len(docs)
            summary.passages += sum(len(p) for _, p in docs)
            if on_progress:
                on_progress(len(docs), sum(len(p) for _, p in docs))
        batch.clear()
        in_batch.clear()

    finished = False
    try:
        for doc in documents:
            # The same id twice in one batch would be compared against the stored version
            # both times; writing the first before reading for the second keeps "last wins".
            if doc.doc_id in in_batch:
                flush()
            passages = split_document(doc.text, settings.max_passage_tokens, tokenizer)
            tag = partition_tag(partition_for_doc(doc.doc_id, partitions))
            batch.setdefault(tag, []).append((doc, passages))
            in_batch.add(doc.doc_id)
            if len(in_batch) >= BATCH_DOCUMENTS:
                flush()
        flush()
        finished = True
    except LoadError as exc:
        try:
            flush()
        except (RedisError, RedisClusterException) as cause:
            raise LoadInterrupted(cause, summary.documents, summary.passages) from exc
        exc.loaded, exc.passages_loaded = summary.documents, summary.passages
        raise
    except (RedisError, RedisClusterException) as cause:
        raise LoadInterrupted(cause, summary.documents, summary.passages) from cause
    finally:
        summary.seconds = time.perf_counter() - started
        if summary.written or summary.deleted:
            try:
                _bump_version(client)
            except RedisError as cause:
                if finished:  # all written, but cached responses may not know it yet
                    raise LoadInterrupted(cause, summary.documents, summary.passages) from cause
                # else the load's own error is the one to report
    return summary


def _bump_version(client: RedisCluster) -> None:
    """Tell caches the corpus changed (also after a partial load: what was written stays)."""
    client.hincrby(keys.CORPUS_META, "version", 1)
