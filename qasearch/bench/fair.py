"""``qasearch bench`` section d: the system beside the twenty-line alternative, per K.

The same corpus (the system's stored passages), the same questions with their gold
answers (the answerable questions of the quality section's file: the sample questions,
or ``--eval-file``), the same embedder and reader weights, the same K, the same thread
count as the floor. The system goes first, through the gateway
(:mod:`~qasearch.bench.per_k`); then the alternative in its own process
(:mod:`~qasearch.bench.baseline`) on the questions the system got to at each K.
Each K's figures of both sides are taken over the questions both answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qasearch.bench import baseline, machine
from qasearch.bench.evaluation.squadfile import EvalQuestion, read_eval_questions
from qasearch.bench.http_load import QueryClient
from qasearch.bench.per_k import summarise, system_per_k
from qasearch.bench.snapshot import stored_texts
from qasearch.bench.timing import ratio
from qasearch.core.settings import Settings

Log = Callable[[str], None]
DEFAULT_KS = (1, 3, 5, 10, 20)


@dataclass
class FairConfig:
    eval_file: str  # SQuAD questions (the sample's by default)
    ks: tuple[int, ...] = DEFAULT_KS
    questions: int = 30
    seconds_per_k: float = 120.0  # per side
    warmup: int = 1  # untimed questions at every K, per side


def answerable(path: str, limit: int) -> list[EvalQuestion]:
    """The first ``limit`` answerable questions of ``path``, in file order (the baseline
    always answers, so unanswerable questions would only measure the system's null flag)."""
    return [q for q in read_eval_questions(path) if not q.impossible][:limit]


def run_fair(settings: Settings, url: str, manifest: dict, threads: int, config: FairConfig,
             model_dir: str | None = None, log: Log = print) -> tuple[dict, dict]:
    """(summary for results.json, raw per-question rows of both sides)."""
    questions = answerable(config.eval_file, config.questions)
    if not questions:
        raise baseline.BaselineFailed(f"{config.eval_file}: no answerable question")
    passages = stored_texts(settings)
    log(f"d. fair baseline: {len(questions)} questions of {config.eval_file}, "
        f"{len(passages)} stored passages, K = {', '.join(map(str, config.ks))}")
    load = {"system": machine.load_average()}  # others' work slows both sides
    client = QueryClient(url, num_results=1, api_key=settings.api_key)
    system = system_per_k(client, [q.question for q in questions],
                          [q.answers for q in questions], config.ks, config.seconds_per_k,
                          config.warmup, log)
    job = baseline.BaselineJob(
        passages=passages, ks=tuple(config.ks), manifest=manifest, settings=settings,
        threads=threads, model_dir=model_dir, warmup=config.warmup,
        seconds_per_k=config.seconds_per_k,
        questions=[baseline.Question(q.question, q.answers,
                                     baseline.gold_passages(q.doc_id, q.context, passages))
                   for q in questions],
        limits={s["k"]: len(s["rows"]) for s in system},
    )
    log(f"d. the alternative in its own process ({threads} torch threads)")
    load["baseline"] = machine.load_average()
    alt = baseline.run(job)
    load["end"] = machine.load_average()
    rows = []
    for s, b in zip(system, alt["per_k"]):
        common = ({r["index"] for r in s["rows"] if r["ok"]}
                  & {r["index"] for r in b["rows"]})
        sys_fig, alt_fig = summarise(s["rows"], common), summarise(b["rows"], common)
        row = {"k": s["k"], "questions": len(common), "system": sys_fig, "baseline": alt_fig,
               "system_failed": sum(not r["ok"] for r in s["rows"]),
               "baseline_stopped_early": b["stopped_early"]}
        if sys_fig and alt_fig:
            row["latency_speedup"] = ratio(alt_fig["p50_ms"], sys_fig["p50_ms"])
            row["throughput_speedup"] = ratio(sys_fig["questions_per_s"],
                                              alt_fig["questions_per_s"])
            log(f"   K={row['k']}: system p50 {sys_fig['p50_ms']:.0f} ms F1 "
                f"{sys_fig['f1']:.1f} ({sys_fig['passages_read_mean'] or 0:.1f} read), "
                f"baseline p50 {alt_fig['p50_ms']:.0f} ms F1 {alt_fig['f1']:.1f}, "
                f"speed-up {row['latency_speedup']:.2f}x"
                + (f"; {sys_fig['partial']} PARTIAL system replies" if sys_fig["partial"] else ""))
        rows.append(row)
    summary = {
        "file": config.eval_file, "questions": len(questions), "passages": len(passages),
        "threads": threads, "gold_known": sum(bool(q.gold) for q in job.questions),
        "load_average": load,
        "baseline": {k: alt[k] for k in ("reader", "embedder", "index_seconds")},
        "config": {"ks": list(config.ks), "seconds_per_k": config.seconds_per_k,
                   "warmup": config.warmup},
        "per_k": rows,
    }
    return summary, {"fair_system": system, "fair_baseline": alt["per_k"]}
