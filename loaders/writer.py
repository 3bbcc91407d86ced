"""Write documents into the cluster, atomically per document.

Documents are batched by partition; each partition batch is one MULTI/EXEC on the
partition's node (legal in cluster mode because every key carries the partition's
hash tag), so a document is either wholly written or not at all. Per document:

* ``HSET keys.passage``, ``SADD keys.passage_index`` and an ``op=set`` entry on
  ``keys.ingest_stream`` for every passage that is new or whose text, title or
  section changed (the node's worker pre-tokenises and embeds it from there);
* only ``HSET`` of the changed fields when just ``char_start`` or ``source`` moved:
  the tensors do not depend on them, so the workers are not asked to redo anything;
* for chunks an earlier version of the document had and this one has not:
  ``DEL`` passage and tensors, ``SREM``, their cached answers (``keys.cached_answers``,
  read just before) and an ``op=del`` ingest entry (the worker drops them from its
  index, and any answer cached after the read);
* ``HSET keys.document`` with the passage count, or ``DEL`` of it when the document
  came in empty: an empty document is written like any other, so it removes every
  passage the cluster held for it.

A document id is loaded once per load: a second record with the same id is a
:class:`LoadError` naming both places, unless ``replace_duplicates`` lets the later
one win (counted in ``LoadSummary.replaced``). The summary's document and passage
counts are what the cluster holds for the load's ids afterwards.

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

from loaders.documents import Document, LoadError, plural
from loaders.splitter import Passage, split_document
from qasearch.core import keys
from qasearch.core.partitions import partition_for_doc, partition_tag
from qasearch.core.settings import Settings
from qasearch.core.topology import masters

BATCH_DOCUMENTS = 64
INGEST_MAXLEN = 1_000_000  # approximate trimming; a worker also reconciles from the index on start

Batch = dict[str, list[tuple[Document, list[Passage]]]]


class LoadInterrupted(RuntimeError):
    """The cluster failed in the middle of a load: ``documents`` documents and ``passages``
    passages were written (each document whole) before ``cause``; none after it."""

    def __init__(self, cause: Exception, documents: int, passages: int) -> None:
        super().__init__(f"{cause} ({plural(documents, 'document')}, "
                         f"{plural(passages, 'passage')} written before it)")
        self.cause, self.documents, self.passages = cause, documents, passages


@dataclass
class LoadSummary:
    documents: int = 0  # the load's ids with passages in the cluster afterwards
    passages: int = 0  # their passages
    written: int = 0  # passages new or changed (each one ingest entry)
    unchanged: int = 0
    deleted: int = 0  # stale chunks of shorter (or empty) new versions
    removed: int = 0  # documents that had passages and now have none
    empty: int = 0  # documents that came in empty (removed or not)
    replaced: int = 0  # records whose id came again later in the load (replace_duplicates)
    partitions: set[str] = field(default_factory=set)
    seconds: float = 0.0
    held: dict[str, int] = field(default_factory=dict, repr=False)  # id -> passages now

    def record(self, doc_id: str, passages: int) -> None:
        """Count ``doc_id`` as holding ``passages`` now (replacing what it was counted as)."""
        before = self.held.get(doc_id, 0)
        self.held[doc_id] = passages
        self.documents += (passages > 0) - (before > 0)
        self.passages += passages - before

    @property
    def passages_per_second(self) -> float:
        return self.passages / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Counts:
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    removed: int = 0  # documents emptied
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
    fields = ["text", "title", "char_start", "source", "section"]
    # Read what is there, to write only what changed.
    probe = node.pipeline(transaction=False)
    for doc, passages in docs:
        probe.hget(keys.document(tag, doc.doc_id), "passages")
        for p in passages:
            probe.hmget(keys.passage(tag, keys.passage_id(doc.doc_id, p.chunk)), fields)
    found = iter(probe.execute())
    plan = []
    for doc, passages in docs:
        old_count = int(next(found) or 0)
        plan.append((doc, passages, old_count, [next(found) for _ in passages]))
    stale = [keys.passage_id(doc.doc_id, chunk) for doc, passages, old_count, _ in plan
             for chunk in range(len(passages), old_count)]
    answers = _cached_answers(node, tag, stale)

    counts = _Counts()
    tx = node.pipeline(transaction=True)
    for doc, passages, old_count, olds in plan:
        for p, old in zip(passages, olds):
            _write_passage(tx, tag, doc, p, [_bytes(v) for v in old], counts)
        for chunk in range(len(passages), old_count):
            pid = keys.passage_id(doc.doc_id, chunk)
            tx.delete(keys.passage(tag, pid), keys.tensors(tag, pid), keys.cached_answers(tag, pid),
                      *answers.get(pid, ()))
            tx.srem(keys.passage_index(tag), pid)
            tx.srem(keys.cached_passages(tag), pid)
            tx.xadd(keys.ingest_stream(tag), {"op": "del", "pid": pid},
                    maxlen=INGEST_MAXLEN, approximate=True)
            counts.deleted += 1
        if passages:
            tx.hset(keys.document(tag, doc.doc_id),
                    mapping={"passages": len(passages), "source": doc.source})
        else:
            tx.delete(keys.document(tag, doc.doc_id))
            counts.removed += old_count > 0
    tx.execute()
    if counts.added != counts.deleted:
        client.hincrby(keys.CORPUS_META, keys.CORPUS_RECORDED, counts.added - counts.deleted)
    return counts


def _cached_answers(node, tag: str, pids: list[str]) -> dict[str, list[bytes]]:
    """The answer keys cached for each of ``pids`` (removed with the passages)."""
    if not pids:
        return {}
    probe = node.pipeline(transaction=False)
    for pid in pids:
        probe.smembers(keys.cached_answers(tag, pid))
    return {pid: list(members) for pid, members in zip(pids, probe.execute()) if members}


def _write_passage(tx, tag: str, doc: Document, p: Passage, old: list[bytes | None],
                   counts: _Counts) -> None:
    pid = keys.passage_id(doc.doc_id, p.chunk)
    old_text, old_title, old_start, old_source, old_section = old
    section = doc.section_at(p.char_start)
    if (old_text == p.text.encode() and (old_title or b"") == doc.title.encode()
            and (old_section or b"") == section.encode()):
        counts.unchanged += 1
        if old_start != str(p.char_start).encode() or old_source != doc.source.encode():
            tx.hset(keys.passage(tag, pid),
                    mapping={"char_start": p.char_start, "source": doc.source})
        return
    tx.hset(keys.passage(tag, pid), mapping={
        "text": p.text, "title": doc.title, "doc_id": doc.doc_id, "source": doc.source,
        "chunk": p.chunk, "char_start": p.char_start, "section": section,
    })
    tx.sadd(keys.passage_index(tag), pid)
    if old_text is None:
        counts.added += 1
    tx.xadd(keys.ingest_stream(tag), {"op": "set", "pid": pid},
            maxlen=INGEST_MAXLEN, approximate=True)
    counts.written += 1


def write_documents(
    client: RedisCluster,
    settings: Settings,
    documents: Iterable[Document],
    tokenizer: Tokenizer,
    on_progress: Callable[[int, int], None] | None = None,
    replace_duplicates: bool = False,
) -> LoadSummary:
    """Split ``documents`` into passages of at most ``settings.max_passage_tokens`` tokens
    and write them; ``on_progress(documents, passages)`` is called after every batch.

    An id read a second time is a :class:`LoadError` at the second place, naming the
    first (what came before it is written); with ``replace_duplicates`` the later
    record replaces the earlier one.

    On a :class:`LoadError` from the reader the documents read before it are written,
    the error is given the counts (``loaded``, ``passages_loaded``) and raised again. A
    cluster error while writing becomes :class:`LoadInterrupted` with what was written.
    """
    started = time.perf_counter()
    summary = LoadSummary()
    partitions = corpus_partitions(client, settings)
    batch: Batch = {}
    in_batch: set[str] = set()
    first_seen: dict[str, str] = {}  # id -> where it was read first

    def flush() -> None:
        for tag, docs in batch.items():
            counts = _write_partition(client, tag, docs)
            summary.written += counts.written
            summary.unchanged += counts.unchanged
            summary.deleted += counts.deleted
            summary.removed += counts.removed
            summary.partitions.add(tag)
            for doc, passages in docs:
                summary.record(doc.doc_id, len(passages))
            if on_progress:
                on_progress(len(docs), sum(len(p) for _, p in docs))
        batch.clear()
        in_batch.clear()

    finished = False
    try:
        for doc in documents:
            if doc.doc_id in first_seen:
                if not replace_duplicates:
                    raise LoadError(doc.path or doc.source, doc.location,
                                    f'document id "{doc.doc_id}" again: it was first read at '
                                    f"{first_seen[doc.doc_id]} (give --replace-duplicates to "
                                    "let the later one win)")
                summary.replaced += 1
            first_seen.setdefault(doc.doc_id, doc.origin)
            # The same id twice in one batch would be compared against the stored version
            # both times; writing the first before reading for the second keeps "last wins".
            if doc.doc_id in in_batch:
                flush()
            summary.empty += not doc.text
            passages = (split_document(doc.text, settings.max_passage_tokens, tokenizer)
                        if doc.text else [])
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
