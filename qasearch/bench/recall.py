"""Retrieval recall: how often the passage holding the answer is among those read.

For each question of a SQuAD-format set whose context is a passage of the loaded
corpus, the question is embedded with the served embedder and the passages read
are picked exactly as the two phases pick them (every node's dense and BM25
candidates, fused, the best ``top_k``: :meth:`CorpusSnapshot.candidates`, from
the stored tensors and texts). The recall at each k is one input to the ``top_k``
default; `qasearch eval` gives the other, answer F1 at each k.
"""

from __future__ import annotations

from dataclasses import dataclass

from qasearch.bench.snapshot import CorpusSnapshot
from qasearch.core import modelpkg
from qasearch.core.models import LoadedModel
from qasearch.core.questions import SquadQuestion
from qasearch.core.settings import Settings
from qasearch.core.topology import masters, node_client


@dataclass(frozen=True)
class RecallPoint:
    top_k: int
    recall: float
    passages_read: float


def measure_recall(
    settings: Settings, questions: list[SquadQuestion], ks: list[int]
) -> tuple[list[RecallPoint], int]:
    """Recall at each k, and how many questions had their passage in the corpus."""
    first = masters(settings)[0]
    model = LoadedModel.from_package(
        modelpkg.load(node_client(first.host, first.port, settings), first.tag)
    )
    snapshot = CorpusSnapshot.read(settings, model)
    by_text = {p.text.strip(): pid for pid, p in snapshot.passages.items()}
    usable = [q for q in questions if q.context.strip() in by_text]
    vectors = model.embed([q.question for q in usable])
    points = []
    for k in ks:
        hits = read = 0
        at_k = settings.replace(top_k=k)
        for q, vec in zip(usable, vectors):
            found = [p.pid for node in snapshot.candidates(q.question, vec, at_k) for p in node]
            read += len(found)
            hits += by_text[q.context.strip()] in found
        points.append(RecallPoint(k, hits / max(1, len(usable)), read / max(1, len(usable))))
    return points, len(usable)
