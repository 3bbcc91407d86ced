"""The system's side of the baseline comparison: ``POST /qasearch`` per K, and summaries.

Each question goes to the gateway as ``{"search": q, "top_k": K, "cache": false,
"num_results": 1}``, one at a time (c=1), after warm-up requests at that K. ``top_k`` is
read as the number of passages read in total (a global top-K over all shards); each
response's ``passages_read`` is kept, so a gateway that reads ``top_k`` per partition
shows as reading more. The top answer is scored with the official SQuAD metric (a
response that says ``no_answer`` still gives its top answer: the baseline always answers).

:func:`summarise` turns per-question rows of either side into latency p50/p95, c=1
throughput (questions / the sum of their latencies), EM/F1 and, where known, recall.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from qasearch.bench.evaluation.metric import aggregate, score
from qasearch.bench.http_load import QueryClient
from qasearch.bench.timing import Summary

Log = Callable[[str], None]


def ask_all(client: QueryClient, questions: Sequence[str], top_k: int | None,
            max_seconds: float, warmup: int = 1,
            answers: Sequence[Sequence[str]] | None = None) -> list[dict]:
    """One row per question asked (in order, until ``max_seconds`` after the first):
    latency, ``passages_read``, whether the reply was partial, EM/F1 when ``answers``."""
    for q in questions[: max(0, warmup)]:
        client.ask(q, num_results=1, top_k=top_k)
    rows: list[dict] = []
    stop_at = time.monotonic() + max_seconds
    for i, q in enumerate(questions):
        if rows and time.monotonic() > stop_at:
            break
        reply = client.ask(q, num_results=1, top_k=top_k)
        row: dict = {"index": i, "ok": reply.ok, "ms": reply.ms, "error": reply.error}
        if reply.ok:
            body = reply.body
            results = body.get("results") or []
            row.update(answer=results[0]["answer"] if results else "",
                       read=body.get("passages_read"), cached=bool(body.get("cached")),
                       partial=bool(body.get("shards", {}).get("failed")
                                    or body.get("shards", {}).get("partitions", {})
                                    .get("missing")))
            if answers is not None:
                row["em"], row["f1"] = score(row["answer"], answers[i])
        rows.append(row)
    return rows


def system_per_k(client: QueryClient, questions: Sequence[str],
                 answers: Sequence[Sequence[str]], ks: Sequence[int], max_seconds: float,
                 warmup: int = 1, log: Log = print) -> list[dict]:
    """Per K: ``{"k", "rows"}`` of :func:`ask_all` over ``questions``."""
    found = []
    for k in ks:
        rows = ask_all(client, questions, k, max_seconds, warmup, answers)
        bad = sum(not r["ok"] for r in rows)
        log(f"   system K={k}: {len(rows)} questions" + (f", {bad} failed" if bad else ""))
        found.append({"k": k, "rows": rows})
    return found


def summarise(rows: Sequence[dict], indexes: set[int] | None = None) -> dict | None:
    """Figures of the answered ``rows`` (only those whose index is in ``indexes``, if given)."""
    kept = [r for r in rows if r.get("ok", True) and (indexes is None or r["index"] in indexes)]
    if not kept:
        return None
    timings = [r["ms"] for r in kept]
    lat = Summary.of(timings)
    quality = aggregate([(r["em"], r["f1"]) for r in kept if "em" in r])
    read = [r["read"] for r in kept if isinstance(r.get("read"), (int, float))]
    gold = [r["gold_read"] for r in kept if r.get("gold_read") is not None]
    return {
        "questions": len(kept), "p50_ms": lat.p50_ms, "p95_ms": lat.p95_ms,
        "mean_ms": lat.mean_ms, "questions_per_s": 1000.0 * len(kept) / sum(timings),
        "exact_match": quality["exact_match"], "f1": quality["f1"],
        "passages_read_mean": statistics.fmean(read) if read else None,
        "recall": sum(gold) / len(gold) if gold else None,
        "partial": sum(bool(r.get("partial")) for r in kept),
        "cached": sum(bool(r.get("cached")) for r in kept),
    }
