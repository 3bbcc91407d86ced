"""The node's partition indexes, kept current with its passages.

A partition is loaded fully before it is served (:meth:`Indexer.reconcile`):
stored tensors of the current model go into its dense index as they are, missing
or stale ones are made (:mod:`gears.tensorize`) and stored, and every text goes
into the node's BM25 index (:mod:`gears.lexical`). After that the partition
follows its ingest stream: a master's worker reads it through the workers'
consumer group, a standby reads the replica's copy without one
(:class:`~gears.standby.IngestTail`), since a replica refuses the group's writes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from gears import metrics, node_data
from gears.engine import AnswerEngine
from gears.retrieval import PartitionIndex
from gears.shard_state import ShardState
from gears.standby import IngestTail
from gears.tensorize import PassageText, embedding_input, tensorize
from qasearch.core import keys
from qasearch.core.partitions import partition_tag

log = logging.getLogger("qasearch.worker")


class Indexer:
    def __init__(self, state: ShardState, engine: AnswerEngine, tail: IngestTail) -> None:
        self.state = state
        self.engine = engine
        self.tail = tail  # a standby's positions in the ingest streams

    def reconcile(self, part: int) -> None:
        """Load a partition fully, then serve it: current tensors go into the index,
        missing or stale ones are made and stored; every text goes into the BM25 index."""
        s = self.state
        tag = partition_tag(part)
        if s.ownership.standby:
            self.tail.mark(part)  # every change from here on is read by _follow_replica
        elif part in s.ownership.partitions:
            node_data.ensure_group(s.client, s.groups, keys.ingest_stream(tag), start_id="$")
        index, staged = node_data.build_index(s.client, part, s.model)
        self.write_tensors(part, staged)
        node_data.build_lexical(s.client, s.lexical, part, index.pids())
        with s.lock:
            s.indexes[part] = index
        log.info("partition %s: %d passages (%d tokenised now)", tag, len(index), len(staged))

    def ingest_once(self) -> int:
        """Process what is waiting on the ingest streams; returns entries handled."""
        s = self.state
        if s.ownership.standby:
            return self._follow_replica()
        handled = 0
        for part in s.ownership.partitions:
            if part not in s.indexes:
                self.reconcile(part)
            stream = keys.ingest_stream(partition_tag(part))
            if stream not in s.groups:
                # a partition warmed while importing has no group yet
                node_data.ensure_group(s.client, s.groups, stream, start_id="$")
                handled += node_data.adopt_pending(s.client, s.consumer, stream,
                                                   lambda e, p=part: self._apply(p, e))
            handled += node_data.read_group(s.client, s.consumer, stream, ">",
                                            lambda e, p=part: self._apply(p, e))
        return handled

    def write_tensors(self, part: int, staged: node_data.Staged) -> None:
        if self.state.ownership.standby:
            return  # a replica refuses writes; the master's worker stores these
        node_data.write_tensors(self.state.client, part, staged)
        self.state.counters["passages_tokenised"] += len(staged)

    def drop_all(self) -> None:
        """Forget every partition (the node became a replica: it is indexed anew)."""
        s = self.state
        with s.lock:
            for part in list(s.indexes):
                s.lexical.drop_partition(part)
            s.indexes = {}

    def drop_except(self, keep: Collection[int]) -> None:
        """Forget the partitions not in ``keep`` (moved to another node)."""
        s = self.state
        with s.lock:
            for part in list(s.indexes):
                if part not in keep:
                    del s.indexes[part]
                    s.lexical.drop_partition(part)

    def _apply(self, part: int, entries: list) -> None:
        """Apply ingest entries to the indexes and tensors."""
        self._changed(part, *node_data.ingest_changes(entries))

    def _follow_replica(self) -> int:
        """A standby's ingest: the master's changes as they reach the replica."""
        for part in self.state.ownership.partitions:
            if part not in self.state.indexes or not self.tail.tracked(part):
                self.reconcile(part)
        changes = self.tail.poll()
        for part, (sets, dels) in changes.items():
            self._changed(part, sets, dels)
        return sum(len(s) + len(d) for s, d in changes.values())

    def _changed(self, part: int, sets: list[str], dels: list[str]) -> None:
        self.engine.drop_passage_answers(partition_tag(part), sets + dels)
        if sets:
            self._store_tensors(part, node_data.passage_texts(self.state.client, part, sets))
        for pid in dels:
            self._index(part).remove(pid)
            self.state.lexical.remove(part, pid)

    def _store_tensors(self, part: int, passages: list[PassageText]) -> None:
        """Tensorize ``passages`` into the indexes, and store their tensors (on a master:
        a standby's replica refuses writes, and the master's worker stores them)."""
        s = self.state
        with metrics.EMBEDDER_SECONDS.time():
            results = tensorize(s.model, passages)
        if not s.ownership.standby:
            node_data.write_tensors(s.client, part, [
                (passage.pid, fields) for passage, (fields, _) in zip(passages, results)])
        index = self._index(part)
        for passage, (_, vector) in zip(passages, results):
            index.upsert(passage.pid, vector)
        s.lexical.upsert_many(part, [(p.pid, embedding_input(p.title, p.text))
                                     for p in passages])
        s.counters["passages_tokenised"] += len(passages)

    def _index(self, part: int) -> PartitionIndex:
        with self.state.lock:
            index = self.state.indexes.get(part)
            if index is None:
                index = self.state.indexes[part] = PartitionIndex(self.state.model.embedding_dim)
            return index
