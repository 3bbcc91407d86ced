"""The benchmark's PNG plots (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

SERIES = (
    ("system_c1_ms", "/qasearch end to end, c=1"),
    ("floor_ms", "floor: same forward passes in-process"),
    ("pipeline_same_passages_ms", "HF pipeline, same passages"),
)


def latency_histogram(raw: dict, path: Path) -> Path | None:
    """Distributions of per-question latency: the system, its floor, the pipeline (i)."""
    present = [(key, label) for key, label in SERIES if raw.get(key)]
    if not present:
        return None
    values = [v for key, _ in present for v in raw[key]]
    low, high = min(values), max(values)
    bins = 30 if high > low else 1
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, label in present:
        ax.hist(raw[key], bins=bins, range=(low, high) if high > low else None,
                histtype="step", linewidth=1.8, label=f"{label} (n={len(raw[key])})")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("latency per question (ms)")
    ax.set_ylabel("questions")
    ax.set_title("Latency per question, caches off")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_plot(results: dict, path: Path) -> Path | None:
    """Requests/s against concurrency, with the floor (and the pipeline) as lines."""
    levels = results.get("throughput") or []
    c1 = results.get("latency_c1")
    points = []
    if c1 and c1.get("mean_ms"):
        points.append((1, 1000.0 / c1["mean_ms"]))
    points += [(x["concurrency"], x["requests_per_s"]) for x in levels]
    if not points:
        return None
    points.sort()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-",
            label="/qasearch end to end (c=1: 1/mean latency)")
    ft = results.get("floor_throughput")
    if ft:
        ax.axhline(ft["questions_per_s"], color="tab:red", linestyle="--",
                   label=f"floor: best-case batched forward passes ({ft.get('layout', '')})")
    ratios = results.get("ratios", {})
    if ratios.get("floor_sequential_questions_per_s"):
        ax.axhline(ratios["floor_sequential_questions_per_s"], color="tab:orange", linestyle=":",
                   label="floor: one question at a time")
    pipe = results.get("pipeline", {}).get("same_passages", {})
    if pipe.get("questions_per_s"):
        ax.axhline(pipe["questions_per_s"], color="tab:gray", linestyle="-.",
                   label="HF pipeline, same passages, one at a time")
    ax.set_xscale("log", base=2)
    ax.set_xticks([p[0] for p in points], [str(p[0]) for p in points])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("questions per second")
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput, caches off")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scale_plot(scale: list[dict], path: Path) -> Path | None:
    """Query latency (p50, p95) and live ingest rate against corpus size."""
    rows = [r for r in scale if r.get("latency")]
    if not rows:
        return None
    sizes = [r["passages"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.plot(sizes, [r["latency"]["p50_ms"] for r in rows], "o-", label="p50")
    left.plot(sizes, [r["latency"]["p95_ms"] for r in rows], "s--", label="p95")
    left.set_xscale("log")
    left.set_xlabel("passages in the corpus")
    left.set_ylabel("/qasearch latency, c=1, caches off (ms)")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    left.set_title("Latency against corpus size")
    worker = [r["ingest"]["worker_passages_per_s"] for r in rows]
    floor = [r["ingest"]["embedder_floor_passages_per_s"] for r in rows]
    x = range(len(rows))
    right.bar([i - 0.2 for i in x], worker, width=0.4, label="through the workers")
    right.bar([i + 0.2 for i in x], floor, width=0.4, label="embedder floor (best layout)")
    right.set_xticks(list(x), [f"{s:,}" for s in sizes])
    right.set_xlabel("passages in the corpus")
    right.set_ylabel("passages per second (tokenise + embed)")
    right.legend(fontsize=8, loc="lower right")
    right.set_title("Ingest throughput")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
