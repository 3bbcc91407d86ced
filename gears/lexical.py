"""A BM25 lexical index of all the partitions one worker holds, built with ``bm25s``.

One index per node, not per partition, so document frequencies (IDF) come from the
node's whole share of the corpus, not from a few dozen passages. Documents are keyed by
``(partition, pid)``.

bm25s builds an immutable index from a whole corpus. Writes (``upsert``, ``remove``,
``drop_partition``) change the document store at once and mark it dirty; ``refresh()``
builds a new bm25s index from a copy of the store, outside the lock, and swaps it in
with one assignment; ``search`` uses whichever snapshot is current, never waiting for a
build (it does share the GIL with one: see below). Until the next refresh a new passage
is not found and a changed one is scored on its old text, but a removed passage, or one
of a dropped partition, is never returned: hits are checked against the store.

Documents are stored as tuples of stems, so a rebuild neither tokenises nor stems:
bm25s takes token lists and makes a fresh vocabulary each build, so stems of passages
that left do not linger. Token ids from a vocabulary kept here would save about a
quarter of the build, but that vocabulary would need compacting as passages leave.

Measured on this 2-core machine (a training job running beside it): bm25s 0.3.11, scipy
CSC backend, 120-word passages cut from ``data/squad`` (8k distinct stems), 6-word
queries, ``scripts/bench_lexical.py``:

    passages   upsert_many (tokenise)   refresh (rebuild)   search, n=10
    1,000      0.07 s                   0.03 s              0.09 ms
    10,000     0.63 s                   0.25 s              0.12 ms
    50,000     2.7 s                    1.4 s               0.23 ms (0.36 ms, 2 partitions)

Loading and indexing 50k passages raised peak RSS by about 150 MB. With a thread
searching non-stop, a 50k rebuild took 5.3 s and its searches 0.25 ms median, 78 ms
at worst (the build holds the GIL in its Python loops and some numpy calls).

bm25s API notes: ``BM25.retrieve`` raises when k exceeds the corpus size and returns
zero-score documents, so scores come from ``get_scores_from_ids`` and the top n is
taken here; ``index`` fails on an empty corpus; ``index`` by default adds a "" token to
the vocabulary with no column in the score matrix (turned off); the library sets its
logger to DEBUG at import (reset below).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Collection, Iterable
from typing import NamedTuple

import bm25s
import numpy as np
import Stemmer

# bm25s sets its logger to DEBUG on import: a line per build in the worker's INFO log
logging.getLogger("bm25s").setLevel(logging.WARNING)

Key = tuple[int, str]

# a PyStemmer stemmer keeps internal state and must not be called from two threads
_local = threading.local()


def _tokenize(texts: list[str]) -> list[tuple[str, ...]]:
    """bm25s's tokenizer: lower-cased words of two or more characters, English
    stopwords out, Snowball English stems. The same for passages and queries.

    The stopwords are bm25s's "en_plus" (NLTK's 179 words), not its default "en"
    (Lucene's 33), which keeps what/when/which/did: on the SQuAD questions of
    data/squad against its 646 paragraphs, recall@1 0.818 and @5 0.952 with these,
    0.808 and 0.942 with the default.
    """
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    stems = bm25s.tokenize(texts, lower=True, stopwords="en_plus", stemmer=stemmer,
                           return_ids=False, show_progress=False)
    # interned, so the many copies of a stem across passages share one string
    return [tuple(map(sys.intern, doc)) for doc in stems]


class _Snapshot(NamedTuple):
    retriever: bm25s.BM25
    keys: list[Key]  # row i of the bm25s index is keys[i]
    parts: np.ndarray  # partition of each row, for the partitions filter


class LexicalIndex:
    """BM25 over the passages of one node's partitions; thread-safe (one writer that
    also refreshes, any number of searching threads)."""

    def __init__(self) -> None:
        self._docs: dict[Key, tuple[str, ...]] = {}
        self._by_part: dict[int, set[str]] = {}
        self._dirty = False
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()  # the document store
        self._build_lock = threading.Lock()  # one build at a time: an older one never wins

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, key: object) -> bool:
        return key in self._docs

    def partitions(self) -> set[int]:
        """Partitions with at least one passage in the store (not the snapshot)."""
        with self._lock:
            return set(self._by_part)

    def upsert(self, partition: int, pid: str, text: str) -> None:
        """Add or replace one passage; searchable from the next ``refresh``."""
        self.upsert_many(partition, [(pid, text)])

    def upsert_many(self, partition: int, items: Iterable[tuple[str, str]]) -> None:
        """Add or replace ``(pid, text)`` passages of one partition. Tokenising a batch
        at once stems each distinct word once, about twice as fast as one by one."""
        items = list(items)
        if not items:
            return
        stems = _tokenize([text for _, text in items])  # outside the lock: the slow part
        with self._lock:
            pids = self._by_part.setdefault(partition, set())
            for (pid, _), doc in zip(items, stems):
                key = (partition, pid)
                if self._docs.get(key) != doc:  # an unchanged passage needs no rebuild
                    self._docs[key] = doc
                    self._dirty = True
                pids.add(pid)

    def remove(self, partition: int, pid: str) -> None:
        """Forget one passage; no longer returned from now on."""
        with self._lock:
            if self._docs.pop((partition, pid), None) is None:
                return
            pids = self._by_part[partition]
            pids.discard(pid)
            if not pids:
                del self._by_part[partition]
            self._dirty = True

    def drop_partition(self, partition: int) -> None:
        """Forget every passage of a partition that left the node."""
        with self._lock:
            for pid in self._by_part.pop(partition, ()):
                del self._docs[(partition, pid)]
                self._dirty = True

    def refresh(self) -> bool:
        """Rebuild the BM25 index from the store if it changed since the last build,
        and swap it in. Returns whether it rebuilt. Searches go on meanwhile."""
        with self._build_lock:
            with self._lock:
                if not self._dirty:
                    return False
                self._dirty = False  # a write during the build marks it dirty again
                items = list(self._docs.items())
            try:
                snapshot = _build(items)
            except BaseException:
                with self._lock:
                    self._dirty = True
                raise
            self._snapshot = snapshot  # one assignment: searches see old or new, whole
            return True

    def search(self, query: str, n: int,
               partitions: Collection[int] | None = None) -> list[tuple[int, str, float]]:
        """The ``n`` best passages for ``query``, best first, as (partition, pid, BM25
        score), of ``partitions`` only when given, with a score above 0 (sharing at
        least one stem with the query). Scores are of the last refreshed snapshot."""
        snapshot = self._snapshot
        if n <= 0 or snapshot is None or (partitions is not None and not partitions):
            return []
        retriever = snapshot.retriever
        # a repeated query word counts as often as it is repeated, as bm25s does
        ids = retriever.get_tokens_ids(list(_tokenize([query])[0]))
        if not ids:
            return []
        mask = None
        if partitions is not None:
            wanted = np.fromiter(set(partitions), dtype=np.int64)
            mask = np.isin(snapshot.parts, wanted).astype(np.float32)
        scores = retriever.get_scores_from_ids(ids, weight_mask=mask)
        found = np.flatnonzero(scores > 0)
        k = n
        while True:
            top = found
            if k < len(found):
                top = found[np.argpartition(-scores[found], k - 1)[:k]]
            top = top[np.argsort(-scores[top], kind="stable")]
            with self._lock:
                hits = [(*snapshot.keys[i], float(scores[i])) for i in top
                        if snapshot.keys[i] in self._docs]
            # passages removed since the build may have taken places: look further
            if len(hits) >= n or len(top) == len(found):
                return hits[:n]
            k *= 2


def _build(items: list[tuple[Key, tuple[str, ...]]]) -> _Snapshot | None:
    if not any(doc for _, doc in items):
        return None  # bm25s cannot index an empty corpus, nor one without a token
    retriever = bm25s.BM25(csc_backend="scipy")  # faster build than its numpy one
    # lists of tokens: bm25s makes the vocabulary and the ids, nothing is re-stemmed
    retriever.index([doc for _, doc in items], create_empty_token=False,
                    show_progress=False)
    keys = [key for key, _ in items]
    parts = np.fromiter((part for part, _ in keys), dtype=np.int64, count=len(keys))
    return _Snapshot(retriever, keys, parts)
