"""The loaded corpus read back from the cluster once, to redo retrieval in-process.

Per master, in the order its worker holds them (ascending partition index, only
partitions with an index key), each partition's passages go into a
:class:`gears.retrieval.PartitionIndex` from their stored embeddings, in sorted
pid order as the worker's reconcile inserts them, and its texts into the node's
:class:`gears.lexical.LexicalIndex`. :meth:`CorpusSnapshot.candidates` then picks
what the two phases read for a question (every node's candidates by
:func:`gears.answering.node_candidates`, ranked by :func:`api.fusion.rank`, the
best ``top_k``), grouped by node, and
:meth:`CorpusSnapshot.windows` builds the reader windows the worker builds from the
stored ids and offsets (:func:`gears.reader.build_windows`).
:func:`stored_texts` reads, in the same order, only what a passage says in words
(text, title, section, document and place in it), for code that needs no model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from api import fusion
from gears import reader
from gears.answering import node_candidates
from gears.lexical import LexicalIndex
from gears.retrieval import PartitionIndex
from gears.tensorize import READER_FIELDS, embedding_input, made_by, stored_tokens
from qasearch.core import codec, keys
from qasearch.core.partitions import owned_partitions, partition_tag
from qasearch.core.settings import Settings
from qasearch.core.topology import Master, cluster_client, masters, node_client

READ_BATCH = 256


@dataclass(frozen=True)
class StoredPassage:
    tag: str
    pid: str
    text: str
    title: str
    tokens: reader.PassageTokens

    @property
    def key(self) -> str:
        return keys.passage(self.tag, self.pid)


@dataclass(frozen=True)
class StoredText:
    """A passage as stored, without tensors: enough to load or search it elsewhere."""

    pid: str
    doc_id: str
    title: str
    section: str
    text: str
    char_start: int


def stored_texts(settings: Settings) -> list[StoredText]:
    """Every passage of the loaded corpus, per master and partition as :meth:`CorpusSnapshot.read`
    reads them (sorted pids within a partition)."""
    client = cluster_client(settings)
    try:
        count = int(client.hget(keys.CORPUS_META, "partitions") or 0)
    finally:
        client.close()
    fields = ["text", "title", "section", "doc_id", "char_start"]
    found: list[StoredText] = []
    for master in masters(settings):
        node = node_client(master.host, master.port, settings, socket_timeout=60)
        try:
            for part in owned_partitions(master.ranges, count):
                tag = partition_tag(part)
                pids = sorted(m.decode() for m in node.smembers(keys.passage_index(tag)))
                for start in range(0, len(pids), READ_BATCH):
                    chunk = pids[start : start + READ_BATCH]
                    pipe = node.pipeline(transaction=False)
                    for pid in chunk:
                        pipe.hmget(keys.passage(tag, pid), fields)
                    for pid, (text, title, section, doc_id, at) in zip(chunk, pipe.execute()):
                        if text is not None:
                            found.append(StoredText(
                                pid, doc_id.decode() if doc_id else keys.doc_of_passage(pid),
                                (title or b"").decode(), (section or b"").decode(),
                                text.decode(), int(at or 0)))
        finally:
            node.close()
    return found


@dataclass
class NodeShard:
    """One master's partitions, as its worker indexes them."""

    master: Master
    indexes: dict[int, PartitionIndex] = field(default_factory=dict)
    lexical: LexicalIndex = field(default_factory=LexicalIndex)


@dataclass
class CorpusSnapshot:
    nodes: list[NodeShard]
    passages: dict[str, StoredPassage]  # by pid (a document lives in one partition)
    missing: int = 0  # passages without tensors (not tokenised yet)
    stale: int = 0  # tensors made by another tokenizer or embedder than the model's

    @property
    def size(self) -> int:
        return len(self.passages)

    @classmethod
    def read(cls, settings: Settings, model) -> CorpusSnapshot:
        """Every passage's text, ids, offsets and embedding, read from its own node."""
        client = cluster_client(settings)
        try:
            count = int(client.hget(keys.CORPUS_META, "partitions") or 0)
        finally:
            client.close()
        snap = cls(nodes=[], passages={})
        for master in masters(settings):
            shard = NodeShard(master)
            node = node_client(master.host, master.port, settings, socket_timeout=60)
            try:
                for part in owned_partitions(master.ranges, count):
                    snap._read_partition(node, part, shard, model)
            finally:
                node.close()
            shard.lexical.refresh()
            snap.nodes.append(shard)
        return snap

    def _read_partition(self, node, part: int, shard: NodeShard, model) -> None:
        tag = partition_tag(part)
        pids = sorted(m.decode() for m in node.smembers(keys.passage_index(tag)))
        if not pids:
            return
        index = shard.indexes[part] = PartitionIndex(model.embedding_dim)
        for start in range(0, len(pids), READ_BATCH):
            chunk = pids[start : start + READ_BATCH]
            pipe = node.pipeline(transaction=False)
            for pid in chunk:
                pipe.hmget(keys.passage(tag, pid), ["text", "title", "section"])
                pipe.hmget(keys.tensors(tag, pid),
                           [*READER_FIELDS, "emb", "reader_tok", "embedder"])
            raw = pipe.execute()
            for i, pid in enumerate(chunk):
                (text, title, section), (*fields, emb, tok, emb_id) = raw[2 * i], raw[2 * i + 1]
                if text is None or fields[0] is None or emb is None:
                    self.missing += 1
                    continue
                if tok != made_by(model) or (
                    (emb_id or b"").decode() != model.embedder_id
                ):
                    self.stale += 1
                    continue
                index.upsert(pid, codec.decode(emb))
                # as the worker's _passage_texts heads a passage: title, then section
                heading = "\n".join(v.decode() for v in (title, section) if v)
                shard.lexical.upsert(part, pid, embedding_input(heading, text.decode()))
                self.passages[pid] = StoredPassage(
                    tag, pid, text.decode(), (title or b"").decode(),
                    stored_tokens(*fields),
                )

    def candidates(self, question: str, embedding: np.ndarray,
                   settings: Settings) -> list[list[StoredPassage]]:
        """Per node, the passages the two phases read on it for this question, best
        retrieval first."""
        depth = max(settings.retrieve_depth, settings.top_k)
        found = [{"node": n, "pid": pid, **scores}
                 for n, shard in enumerate(self.nodes)
                 for (_, pid), scores in node_candidates(
                     shard.indexes, shard.lexical, question, embedding, depth).items()]
        per_node: list[list[StoredPassage]] = [[] for _ in self.nodes]
        for cand in fusion.rank(found, settings)[: settings.top_k]:
            per_node[cand["node"]].append(self.passages[cand["pid"]])
        return [passages for passages in per_node if passages]

    @staticmethod
    def windows(model, question: str, passages: list[StoredPassage],
                settings: Settings) -> list[reader.Window]:
        """The reader windows of ``question`` over ``passages``, as the worker builds them
        (the question as its answer key holds it, capped at max_question_tokens)."""
        q_ids = model.question_ids(keys.question_form(question),
                                   settings.max_question_tokens)
        max_len = min(settings.max_seq_len, model.reader_max_seq_len)
        found: list[reader.Window] = []
        for p in passages:
            found.extend(reader.build_windows(q_ids, p.tokens, max_len,
                                              settings.doc_stride, model.specials))
        return found
