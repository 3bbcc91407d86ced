"""Writing a benchmark run: results.json, report.md and the plots, in one folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

from qasearch.bench import plots, report_baseline, report_runs
from qasearch.bench.report_format import figure, ratio


def default_folder() -> Path:
    return Path("results") / time.strftime("%Y%m%d-%H%M%S")


def resolve_output(output: str | None) -> tuple[Path, Path]:
    """(folder, results.json path) for ``--output``: a folder, or a ``.json`` file whose
    folder then receives the report and plots."""
    if not output:
        folder = default_folder()
        return folder, folder / "results.json"
    path = Path(output)
    if path.suffix == ".json":
        return path.parent, path
    return path, path / "results.json"


def _header(results: dict) -> list[str]:
    m = results.get("machine", {})
    model = results.get("model", {})
    lines = [f"# qasearch benchmark, {results.get('created', '')}", ""]
    if model and not model.get("trained", True):
        lines += ["> **The reader's QA head is untrained** (offline MiniLM): its answers are "
                  "meaningless. These figures are about speed only.", ""]
    lines += [
        "## Machine", "",
        f"* CPU: {m.get('cpu_model')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB memory",
        f"* {m.get('platform')}; Python {m.get('python')}, torch {m.get('torch')}, "
        f"transformers {m.get('transformers', '–')}, numpy {m.get('numpy')}",
        f"* load average (1, 5, 15 min) at start {m.get('load_average_at_start')}, at end "
        f"{m.get('load_average_at_end')}: anything else running on the machine slows every "
        "figure here",
    ]
    phases = results.get("load_average_by_phase") or {}
    if phases:
        lines.append("* 1-minute load average as each phase began: " + ", ".join(
            f"{name} {values[0] if values else '?'}" for name, values in phases.items()))
    lines.append("")
    if model:
        lines += [
            "## Model", "",
            f"* version `{model.get('version')}`: {model.get('name')} (source "
            f"`{model.get('source')}`), trained: {model.get('trained')}, quantized: "
            f"{model.get('quantized')}",
            f"* reader: {model.get('reader_layers')} layers, hidden {model.get('reader_hidden')}, "
            f"max_seq_len {model.get('reader_max_seq_len')}; embedder dim "
            f"{model.get('embedder_dim')}",
        ]
        versions = results.get("gateway_model_versions")
        if versions:
            lines.append(f"* the gateway answered with model version(s) {', '.join(versions)}")
        lines.append("")
    return lines


def _system(results: dict) -> list[str]:
    c1 = results.get("latency_c1")
    if not c1:
        return []
    corpus = results.get("corpus", {})
    lines = [
        "## a. End to end: `POST /qasearch`, caches off", "",
        f"Corpus: {corpus.get('passages', '?')} passages in {corpus.get('partitions', '?')} "
        f"partitions; {results.get('questions_available')} questions available, "
        f"`top_k` {results['settings'].get('top_k')}, `num_results` "
        f"{results['config'].get('num_results')}.",
        "",
        "| | p50 | p95 | p99 | mean | n | errors | partial | cached |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| latency, c=1 (client) | {figure(c1['p50_ms'])} ms | {figure(c1['p95_ms'])} ms | "
        f"{figure(c1['p99_ms'])} ms | {figure(c1['mean_ms'])} ms | {c1['queries']} | "
        f"{c1['errors']} | "
        f"{c1['partial']} | {c1.get('cached', 0)} |",
    ]
    server = c1.get("server_took_ms")
    if server:
        lines.append(f"| gateway's own `took_ms` | {figure(server['p50_ms'])} ms | "
                     f"{figure(server['p95_ms'])} ms | {figure(server['p99_ms'])} ms | "
                     f"{figure(server['mean_ms'])} ms | {server['count']} | | | |")
    lines.append("")
    flag = results.get("cache_flag_sent")
    lines.append('Requests carried `"cache": false`.' if flag else
                 'The gateway refused `"cache": false`; requests were sent without it.')
    for note in results.get("system_notes", []):
        lines.append(f"* {note}")
    levels = results.get("throughput") or []
    if levels:
        lines += [
            "",
            "| concurrency | requests/s | completed | seconds | stopped by | p50 | p95 | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for x in levels:
            lat = x.get("latency") or {}
            lines.append(
                f"| {x['concurrency']} | {figure(x['requests_per_s'], 2)} | {x['completed']} | "
                f"{figure(x['seconds'])} | {x['stopped_by']} | {figure(lat.get('p50_ms'), 0)} ms | "
                f"{figure(lat.get('p95_ms'), 0)} ms | {x['errors']} |")
    return lines + [""]


def _floor(results: dict) -> list[str]:
    fl = results.get("floor_latency")
    if not fl:
        return []
    ft = results["floor_throughput"]
    r = results.get("ratios", {})
    parity = results.get("retrieval_parity", {})
    row = "| {} | {} ms | {} ms | {} ms | {} ms |"
    lines = [
        f"## b. The floor: the same forward passes in-process "
        f"({results.get('in_process_threads')} torch threads)", "",
        f"Per question: {fl['passages_per_question']:.1f} passages, "
        f"{fl['windows_per_question']:.1f} windows in {fl['batches_per_question']:.1f} batches "
        f"({fl['padded_tokens_per_question']:.0f} padded tokens).",
        f"Retrieval parity with the gateway: in {parity.get('agreed', '?')} of "
        f"{parity.get('questions', '?')} warm-up questions every passage the gateway answered "
        "from is one the in-process retrieval picks.",
        "",
        "| | p50 | p95 | p99 | mean |", "|---|---|---|---|---|",
    ]
    for key, label in (("floor_ms", "**floor** = embed + reader"), ("embed_ms", "embed question"),
                       ("reader_ms", "reader forward passes"),
                       ("prep_ms", "retrieval + windows + padding (not in floor)"),
                       ("decode_ms", "span decoding (not in floor)")):
        s = fl[key]
        lines.append(row.format(label, *(figure(s[f"{k}_ms"])
                                         for k in ("p50", "p95", "p99", "mean"))))
    inproc = results.get("floor_throughput_in_process", ft)
    par = results.get("floor_throughput_parallel")
    lines += [
        "",
        f"Best-case throughput, all {ft['windows']} windows of {ft['questions']} questions, "
        f"length-sorted into {ft['batches']} full batches:",
        "",
        f"* one process, {results.get('in_process_threads')} torch threads: "
        f"{inproc['questions_per_s']:.2f} questions/s",
    ]
    if par:
        lines.append(f"* {par['layout']}, as the workers run: "
                     f"{par['questions_per_s']:.2f} questions/s")
    lines += [
        f"* the floor taken below is the better one: **{ft['questions_per_s']:.2f} "
        f"questions/s** ({ft.get('layout', '')}); one question at a time: "
        f"{figure(r.get('floor_sequential_questions_per_s'), 2)} questions/s.",
        "",
        "### System against floor", "",
        "| | ratio |", "|---|---|",
        f"| latency p50, system / floor | {ratio(r.get('latency_system_over_floor_p50'))} |",
        f"| latency mean, system / floor | {ratio(r.get('latency_system_over_floor_mean'))} |",
        f"| throughput, system (best, c={r.get('throughput_best_concurrency')}) / floor "
        f"best case | {ratio(r.get('throughput_system_over_floor'))} |",
    ]
    for c, value in (r.get("throughput_system_over_floor_by_concurrency") or {}).items():
        lines.append(f"| throughput at c={c} / floor best case | {ratio(value)} |")
    pad = results.get("padding")
    if pad:
        bucket = results.get("settings", {}).get("length_bucket_tokens", "?")
        lines += [
            "", "### What the length buckets cost", "",
            f"The reader on the same batches of {pad['questions']} questions, run alternately: "
            f"padded to the worker's length buckets (multiples of {bucket} tokens), "
            f"{pad['bucket_ms']:.0f} ms per question "
            f"({pad['bucket_tokens']:.0f} tokens); padded to each batch's longest window, "
            f"{pad['tight_ms']:.0f} ms ({pad['tight_tokens']:.0f} tokens): buckets / tight = "
            f"{ratio(pad['bucket_over_tight'])}. (Tight padding means many distinct shapes; "
            "whatever TorchScript pays for those is included.)",
        ]
    return lines + [""]


def _pipeline(results: dict) -> list[str]:
    if "pipeline_skipped" in results:
        return ["## c. Hugging Face pipeline", "", f"Skipped: {results['pipeline_skipped']}", ""]
    p = results.get("pipeline")
    if not p:
        return []
    r = results.get("ratios", {})
    lines = [
        "## c. The usual alternative: a warm `transformers` QA pipeline", "",
        f"Eager PyTorch, {p['threads']} threads, same max_seq_len / doc_stride / "
        f"max_answer_len / batch size; {p['note']}.", "",
        "| | passages per question | p50 | p95 | questions/s | system p50 on the same "
        "questions | latency speed-up of the system | throughput speed-up (system best) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("same_passages", "(i) same passages as the system"),
                       ("every_passage", "(ii) every passage of the corpus")):
        run = p.get(key, {})
        lat = run.get("latency")
        if not lat:
            continue
        lines.append(
            f"| {label} | {run['contexts_per_question']:.0f} | {figure(lat['p50_ms'])} ms | "
            f"{figure(lat['p95_ms'])} ms | {figure(run['questions_per_s'], 3)} | "
            f"{figure(r.get(f'pipeline_{key}_system_p50_same_questions_ms'))} ms | "
            f"{ratio(r.get(f'pipeline_{key}_latency_speedup'))} | "
            f"{ratio(r.get(f'pipeline_{key}_throughput_speedup'))} |")
    if p.get("every_passage_capped_at"):
        lines.append(f"\n(ii) was capped at {p['every_passage_capped_at']} passages.")
    return lines + [""]


def _cache(results: dict) -> list[str]:
    c = results.get("answer_cache")
    if not c:
        return []
    return [
        "## Answer cache", "",
        f"`{c['command']}`", "",
        f"* answer key GET {c['answer_key_rps']:,.0f} req/s, plain small GET "
        f"{c['plain_get_rps']:,.0f} req/s on the same node (ratio {c['ratio']:.2f})",
        f"* cached `/qasearch` through gunicorn: p50 {c['cached_qasearch_p50_ms']:.2f} ms, "
        f"p95 {c['cached_qasearch_p95_ms']:.2f} ms", "",
    ]


METHOD = """## How these figures are made

* **a.** `POST /qasearch` from a thread pool of urllib clients on the same machine, a new
  connection per request, `"cache": false` in every body (both the response cache and the
  per-passage answer cache are bypassed). Latency: one request at a time after the
  warm-up requests. Throughput: `c` closed-loop clients until the query count or the time
  limit of the level; requests/s = completed / wall time (the last in-flight requests
  finish inside that time, so short levels understate the steady state a little).
* **b.** In this process, the served package loaded from Redis (`qasearch.core.modelpkg.load`,
  `LoadedModel.from_package`), the corpus read back from the cluster (stored ids, offsets
  and embeddings), retrieval redone per node as the workers do it, the same windows and
  the same padded batches (per node, in order, `max_batch_size` windows, the worker's
  length buckets). The floor is the embedder call plus the reader calls and nothing else,
  run on as many torch threads as the system's workers have in total (at most the cores).
  Best case: all windows of all questions length-sorted into full batches, run in this
  process and, split evenly, in one process per master (at most one per core) with the
  workers' thread count; the faster layout is the floor.
* **c.** `transformers.pipeline("question-answering")` on the reader rebuilt from its source
  (weights digest compared with the package), warm, eager, same thread count, one
  question at a time over its passages (it tokenises them on every call; that is its
  real cost).
* Speed-ups of the system over the pipeline are pipeline latency / system latency on the
  same questions, and system best requests/s / pipeline questions/s.
* The system runs three worker processes (one per master) plus gunicorn on the same
  cores as this client; on a 2-core machine they compete for the CPU with each other and
  with anything else running (see the load averages above).
"""


def _settings(results: dict) -> list[str]:
    s = results.get("settings", {})
    cfg = results.get("config", {})
    return [
        "## Settings", "",
        "`qasearch.core.settings` (environment `QASEARCH_*`):", "",
        "```json", json.dumps(s, indent=1, sort_keys=True), "```", "",
        "Benchmark options:", "",
        "```json", json.dumps(cfg, indent=1, sort_keys=True, default=str), "```", "",
    ]


def markdown(results: dict, images: list[Path]) -> str:
    lines = _header(results)
    lines += _system(results) + _floor(results) + _pipeline(results) + _cache(results)
    if results.get("quality"):
        from qasearch.bench.evaluation.report import quality_lines

        lines += quality_lines(results["quality"])
    if results.get("quality_eval"):  # a qasearch eval run kept in <folder>/eval
        from qasearch.bench.evaluation.report import quality_lines

        evaluated = quality_lines(results["quality_eval"])
        evaluated[0] = f"## Answer quality: `{results['quality_eval'].get('file', '?')}`"
        lines += evaluated
    lines += report_baseline.fair_lines(results) + report_baseline.masters_lines(results)
    lines += (report_runs.scale_lines(results) + report_runs.tuning_lines(results)
              + report_runs.chaos_lines(results))
    for image in images:
        lines += [f"![{image.stem}]({image.name})", ""]
    if results.get("latency_c1"):
        lines.append(METHOD)
    lines += _settings(results)
    return "\n".join(lines) + "\n"


def rewrite(folder: str | Path) -> tuple[Path, list[Path]]:
    """Render ``folder``'s report again from its results.json, with the chaos figures of
    ``chaos.json`` beside it when there are any (``qasearch chaos --json``) and the answer
    quality of ``eval/results.json`` (``qasearch eval --output <folder>/eval``)."""
    folder = Path(folder)
    try:
        saved = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {folder / 'results.json'}: {exc}") from None
    raw = saved.pop("raw", {})
    chaos = folder / "chaos.json"
    if chaos.exists():
        try:
            saved["chaos"] = json.loads(chaos.read_text())
        except ValueError as exc:
            raise ValueError(f"cannot read {chaos}: {exc}") from None
    evaluated = folder / "eval" / "results.json"  # qasearch eval --output <folder>/eval
    if evaluated.exists():
        try:
            saved["quality_eval"] = {k: v for k, v in json.loads(evaluated.read_text()).items()
                                     if k != "rows"}
        except ValueError as exc:
            raise ValueError(f"cannot read {evaluated}: {exc}") from None
    return write(str(folder), saved, raw)


def write(output: str | None, results: dict, raw: dict) -> tuple[Path, list[Path]]:
    """Write results.json (figures and raw timings), the plots and report.md."""
    folder, json_path = resolve_output(output)
    folder.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({**results, "raw": raw}, indent=2, default=str))
    images = [p for p in (
        plots.latency_histogram(raw, folder / "latency_distribution.png"),
        plots.throughput_plot(results, folder / "throughput.png"),
        plots.scale_plot(results.get("scale") or [], folder / "scale.png"),
    ) if p is not None]
    report = folder / "report.md"
    report.write_text(markdown(results, images))
    return folder, [json_path, report, *images]
