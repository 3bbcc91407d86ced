"""Retrieval recall: how often the passage holding the answer is among those read.

For each question of a SQuAD-format set whose context is a passage of the loaded
corpus, the question is embedded with the served embedder and the top-k passages
of every partition are taken exactly as a worker does (:func:`gears.answering.retrieve`
over :class:`gears.retrieval.PartitionIndex` built from the stored tensors). The
recall at each k, beside the passages read per question, is what the ``top_k``
default is chosen from.
"""

from __future__ import annotations

from dataclasses import dataclass

from gears.answering import retrieve
from gears.retrieval import PartitionIndex
from qasearch import codec, keys, modelpkg
from qasearch.models import LoadedModel
from qasearch.partitions import partition_tag
from qasearch.questions import SquadQuestion
from qasearch.settings import Settings
from qasearch.topology import cluster_client, masters, node_client


@dataclass(frozen=True)
class RecallPoint:
    top_k: int
    recall: float
    passages_read: float


def _indexes(settings: Settings, dim: int) -> tuple[dict[int, PartitionIndex], dict[str, str]]:
    client = cluster_client(settings)
    try:
        count = int(client.hget(keys.CORPUS_META, "partitions") or 0)
        indexes, texts = {}, {}
        for part in range(count):
            tag = partition_tag(part)
            index = PartitionIndex(dim)
            for raw in client.smembers(keys.passage_index(tag)):
                pid = raw.decode()
                emb = client.hget(keys.tensors(tag, pid), "emb")
                if emb is None:
                    continue
                index.upsert(pid, codec.decode(emb))
                texts[pid] = client.hget(keys.passage(tag, pid), "text").decode()
            if len(index):
                indexes[part] = index
        return indexes, texts
    finally:
        client.close()


def measure_recall(
    settings: Settings, questions: list[SquadQuestion], ks: list[int]
) -> tuple[list[RecallPoint], int]:
    """Recall at each k, and how many questions had their passage in the corpus."""
    first = masters(settings)[0]
    model = LoadedModel.from_package(
        modelpkg.load(node_client(first.host, first.port, settings), first.tag)
    )
    indexes, texts = _indexes(settings, model.embedding_dim)
    by_text = {text: pid for pid, text in texts.items()}
    usable = [q for q in questions if q.context.strip() in by_text]
    vectors = model.embed([q.question for q in usable])
    points = []
    for k in ks:
        hits = read = 0
        for q, vec in zip(usable, vectors):
            found = retrieve(indexes, vec, k)
            read += len(found)
            hits += any(c.pid == by_text[q.context.strip()] for c in found)
        points.append(RecallPoint(k, hits / max(1, len(usable)), read / max(1, len(usable))))
    return points, len(usable)
