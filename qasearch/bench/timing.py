"""Summaries of timings: nearest-rank percentiles, mean, extremes."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """p50/p95/p99, mean, min and max of a list of milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, values_ms: list[float]) -> Summary:
        if not values_ms:
            raise ValueError("no timings to summarise")
        return cls(
            count=len(values_ms), p50_ms=percentile(values_ms, 50),
            p95_ms=percentile(values_ms, 95), p99_ms=percentile(values_ms, 99),
            mean_ms=statistics.fmean(values_ms), min_ms=min(values_ms), max_ms=max(values_ms),
        )

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"p50 {self.p50_ms:.1f} ms   p95 {self.p95_ms:.1f} ms   "
                f"p99 {self.p99_ms:.1f} ms   mean {self.mean_ms:.1f} ms   (n={self.count})")


def ratio(a: float, b: float) -> float | None:
    """``a / b``, or None when ``b`` is zero or missing."""
    return a / b if b else None
