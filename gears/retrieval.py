"""In-memory passage embeddings of one partition, and top-k by cosine similarity.

Vectors are L2-normalised by the embedder, so cosine similarity is a dot product.
Rows live in one growing float32 matrix; removing a passage moves the last row
into its place, so updates cost O(dim) and search is one matrix-vector product.
"""

from __future__ import annotations

import threading

import numpy as np


class PartitionIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._matrix = np.zeros((64, dim), dtype=np.float32)
        self._pids: list[str] = []
        self._rows: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pids)

    def __contains__(self, pid: str) -> bool:
        return pid in self._rows

    def upsert(self, pid: str, vector: np.ndarray) -> None:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise ValueError(f"vector of {vector.shape[0]} dims in an index of {self.dim}")
        with self._lock:
            row = self._rows.get(pid)
            if row is None:
                row = len(self._pids)
                if row == self._matrix.shape[0]:
                    grown = np.zeros((row * 2, self.dim), dtype=np.float32)
                    grown[:row] = self._matrix
                    self._matrix = grown
                self._pids.append(pid)
                self._rows[pid] = row
            self._matrix[row] = vector

    def remove(self, pid: str) -> None:
        with self._lock:
            row = self._rows.pop(pid, None)
            if row is None:
                return
            last = len(self._pids) - 1
            if row != last:
                moved = self._pids[last]
                self._matrix[row] = self._matrix[last]
                self._pids[row] = moved
                self._rows[moved] = row
            self._pids.pop()

    def top_k(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` most similar passages, best first, as (pid, cosine similarity)."""
        with self._lock:
            n = len(self._pids)
            if n == 0 or k <= 0:
                return []
            scores = self._matrix[:n] @ np.asarray(query, dtype=np.float32).reshape(-1)
            k = min(k, n)
            best = np.argpartition(-scores, k - 1)[:k]
            best = best[np.argsort(-scores[best], kind="stable")]
            return [(self._pids[i], float(scores[i])) for i in best]

    def similarity(self, query: np.ndarray, pid: str) -> float | None:
        """The cosine similarity of one passage to ``query``; None when it is not here."""
        with self._lock:
            row = self._rows.get(pid)
            if row is None:
                return None
            return float(self._matrix[row] @ np.asarray(query, dtype=np.float32).reshape(-1))

    def pids(self) -> list[str]:
        """Every passage id in the index."""
        with self._lock:
            return list(self._pids)
