"""report.md sections of the runs made beside the benchmark: scale, tuning and chaos."""

from __future__ import annotations

from qasearch.bench.report_format import duration, figure, ratio


def scale_lines(results: dict) -> list[str]:
    rows = results.get("scale")
    if not rows:
        return []
    lines = [
        "## Scale: synthetic corpora in fresh systems", "",
        "| passages | with real embeddings | loader into Redis (passages/s) | workers: tokenise + "
        "embed (passages/s) | embedder floor in-process (passages/s) | workers / floor | "
        "embedding all N would take | workers ready after | indexed | Redis memory for the "
        "corpus | read per query | latency p50 | p95 | p99 | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['passages']:,} | failed: {r['error']} |" + " |" * 13)
            continue
        lat = r.get("latency") or {}
        ing = r.get("ingest", {})
        lines.append(
            f"| {r['passages']:,} | {r.get('live_passages', 0):,} | "
            f"{figure(r.get('write_passages_per_s'), 0)} | "
            f"{figure(ing.get('worker_passages_per_s'), 1)} | "
            f"{figure(ing.get('embedder_floor_passages_per_s'), 1)} | "
            f"{ratio(ing.get('worker_over_floor'))} | "
            f"{duration(r.get('embedding_all_would_take_s'))} | "
            f"{figure(r.get('workers_ready_s'))} s | {figure(r.get('indexed_passages'))} | "
            f"{figure(r.get('redis_memory_corpus_mib'), 0)} MiB | "
            f"{figure(r.get('passages_read_per_query'))} | "
            f"{figure(lat.get('p50_ms'))} ms | {figure(lat.get('p95_ms'))} ms | "
            f"{figure(lat.get('p99_ms'))} ms | {r.get('errors', 0)} |")
    lines += ["", results.get("scale_method", ""), ""]
    return lines


def tuning_lines(results: dict) -> list[str]:
    rows = results.get("tuning")
    if not rows:
        return []
    lines = [
        "## Tuning: batching and threads, one setting varied at a time", "",
        "Workers restarted with each setting on one fresh system holding the corpus; "
        "`/qasearch` with caches off. The first row is the current defaults.", "",
        "| max batch | max wait (ms) | torch threads | length bucket | c=1 p50 | p95 | "
        "throughput | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, lat, tp = r["settings"], r["latency_c1"], r["throughput"]
        lines.append(
            f"| {s['max_batch_size']} | {s['max_batch_wait_ms']:g} | {s['torch_threads']} | "
            f"{s['length_bucket_tokens']} | {figure(lat.get('p50_ms'), 0)} ms | "
            f"{figure(lat.get('p95_ms'), 0)} ms | {tp['requests_per_s']:.2f} req/s at "
            f"c={tp['concurrency']} | {r['errors']} |")
    return lines + [""]


def chaos_lines(results: dict) -> list[str]:
    rows = results.get("chaos")
    if not rows:
        return []
    lines = [
        "## Chaos: operational events under a steady stream of queries", "",
        "`qasearch chaos`: every request is classified; *lost* (no answer within its "
        "deadline) must be 0. Recovery: from the event to the first complete answer after "
        "the last incomplete one.", "",
        "| event | sent | answered | partial | failed | lost | recovery | event took | "
        "missing partitions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rec = "never" if r.get("recovery_s") is None else f"{r['recovery_s']:.1f} s"
        lines.append(
            f"| {r['event']} | {r['sent']} | {r['answered']} | {r['partial']} | "
            f"{r['failed']} | {r['lost']} | {rec} | {figure(r.get('event_s'))} s | "
            f"{', '.join(r.get('missing') or []) or '–'} |")
    return lines + [""]
