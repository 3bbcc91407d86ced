"""report.md sections d (the system beside the twenty-line alternative, per K) and e (master
counts), from what :mod:`~qasearch.bench.fair` and :mod:`~qasearch.bench.masters`
put in results.json."""

from __future__ import annotations

from qasearch.bench.report_format import ratio


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def _n(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _load(found: dict | None) -> list[str]:
    """One line of 1-minute load averages as each phase began, when they were taken."""
    if not found:
        return []
    return ["1-minute load average as each side began: " + ", ".join(
        f"{name} {values[0] if values else '?'}" for name, values in found.items())
        + " (anything else running slows both sides)."]


FAIR_METHOD = """\
Both sides per K, one question at a time (c=1; questions/s = questions / the sum of their
latencies), over the questions both answered, in the same order. **System:** `POST
/qasearch` with `{"search": q, "top_k": K, "cache": false, "num_results": 1}`, its top answer;
"read" is the mean `passages_read` of the responses (K when `top_k` is a global top-K; more
when the gateway reads `top_k` per partition). **Baseline:** in a process of its own,
sentence-transformers (the same MiniLM folder) embeds every stored passage once (title and
section before the text, as the workers embed it; not timed per question), then per question
embeds it, takes the top K by cosine (`util.semantic_search`) and runs a warm
`transformers` QA pipeline with the served reader's weights over the K passages (it
tokenises them: part of its cost); the answer is the best-scoring span over the K. EM/F1:
the official SQuAD metric on the top answer. Recall: the gold paragraph among the K passages
the baseline read. Speed-up: baseline p50 / system p50, and system questions/s / baseline
questions/s."""


def fair_lines(results: dict) -> list[str]:
    if "baseline_skipped" in results:
        return ["## d. The twenty-line alternative, per K", "",
                f"Skipped: {results['baseline_skipped']}", ""]
    fair = results.get("baseline")
    if not fair:
        return []
    alt = fair["baseline"]
    lines = [
        "## d. The twenty-line alternative, per K", "",
        f"{fair['questions']} answerable questions of `{fair['file']}` (gold paragraph known for "
        f"{fair['gold_known']}), {fair['passages']} stored passages, {fair['threads']} torch "
        f"threads for the baseline (the floor's). Reader: {alt['reader']['note']}. Embedder: "
        f"`{alt['embedder']}`; the baseline embedded the corpus in "
        f"{alt['index_seconds']:.1f} s (once, not in the figures).",
        *_load(fair.get("load_average")), "",
        "| K | questions | system p50 | p95 | q/s | F1 | EM | read | baseline p50 | p95 | q/s "
        "| F1 | EM | recall@K | speed-up p50 | speed-up q/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in fair["per_k"]:
        s, b = row.get("system") or {}, row.get("baseline") or {}
        lines.append(
            f"| {row['k']} | {row['questions']} | {_ms(s.get('p50_ms'))} | "
            f"{_ms(s.get('p95_ms'))} | {_n(s.get('questions_per_s'), 2)} | {_n(s.get('f1'))} | "
            f"{_n(s.get('exact_match'))} | {_n(s.get('passages_read_mean'))} | "
            f"{_ms(b.get('p50_ms'))} | {_ms(b.get('p95_ms'))} | "
            f"{_n(b.get('questions_per_s'), 2)} | {_n(b.get('f1'))} | "
            f"{_n(b.get('exact_match'))} | {_pct(b.get('recall'))} | "
            f"{ratio(row.get('latency_speedup'))} | {ratio(row.get('throughput_speedup'))} |")
    failed = [f"K={r['k']}: {r['system_failed']}" for r in fair["per_k"] if r["system_failed"]]
    if failed:
        lines += ["", f"System requests that failed (left out): {', '.join(failed)}."]
    partial = [f"K={r['k']}: {r['system']['partial']} of {r['system']['questions']}"
               for r in fair["per_k"] if (r.get("system") or {}).get("partial")]
    if partial:
        lines += ["", f"**Partial system replies** (a shard or partition missing, e.g. past "
                  f"the request's deadline, `timeout_ms`): {', '.join(partial)}. They are "
                  "counted as they came: their latency is cut at the deadline and their "
                  "answer is what the other shards found (none when all missed it)."]
    return lines + ["", FAIR_METHOD, ""]


def masters_lines(results: dict) -> list[str]:
    found = results.get("masters")
    if not found:
        return []
    cfg = found.get("config", {})
    lines = [
        "## e. Master counts: the same corpus in a fresh system of each size", "",
        f"{found['stored_passages']} stored passages rebuilt into {found['documents']} "
        f"documents and loaded into each fresh system ({cfg.get('replicas', 0)} replicas per "
        f"master), the same {found['questions']} questions one at a time, caches off, "
        f"`top_k` {cfg.get('top_k') or 'the gateway default'}, after {cfg.get('warmup')} "
        "warm-up requests. Target of issue 14: the largest within 1.1x of the smallest.", "",
        "| masters | partitions | passages | workers: all indexed after | p50 | p95 | read | "
        "failed | p50 / first | load average |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in found["sizes"]:
        if row.get("error"):
            lines.append(f"| {row['masters']} | failed: {row['error']} |" + " |" * 8)
            continue
        lat = row.get("latency") or {}
        lines.append(
            f"| {row['masters']} | {row.get('partitions')} | {row.get('passages')} | "
            f"{_n(row.get('ready_s'), 0)} s | {_ms(lat.get('p50_ms'))} | "
            f"{_ms(lat.get('p95_ms'))} | {_n(lat.get('passages_read_mean'))} | "
            f"{row.get('failed', 0)} | {ratio(row.get('p50_over_first'))} | "
            f"{(row.get('load_average') or ['?'])[0]} |")
    return lines + [""]
