"""``qasearch bench``: the running system beside its floor and a HF pipeline; or scale mode."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from qasearch.cluster import gateway
from qasearch.core.errors import CommandError
from qasearch.core.questions import read_squad_questions
from qasearch.core.settings import Settings, load_settings

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
DEFAULT_QUESTIONS = SAMPLE / "questions.json"
FALLBACK_QUESTIONS = SAMPLE / "parts" / "science_questions.json"
SCALE_PORT_OFFSET = 100


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("every value must be at least 1")
    return values


def _questions(path: str | None) -> list[str]:
    chosen = Path(path) if path else DEFAULT_QUESTIONS
    if not path and not chosen.exists() and FALLBACK_QUESTIONS.exists():
        chosen = FALLBACK_QUESTIONS
    try:
        found = [q.question for q in read_squad_questions(chosen)]
    except (OSError, ValueError, KeyError) as exc:
        raise CommandError(f"cannot read questions from {chosen}: {exc}") from None
    if not found:
        raise CommandError(f"no questions in {chosen}")
    return found


def _config(args: argparse.Namespace):
    from qasearch.bench.side_by_side import BenchConfig

    base = BenchConfig.quick() if args.quick else BenchConfig()
    changes = {
        "queries": args.queries, "warmup": args.warmup, "concurrency": args.concurrency,
        "level_queries": args.level_queries, "level_seconds": args.level_seconds,
        "floor_threads": args.floor_threads, "padding_questions": args.padding_questions,
        "pipeline_questions": args.pipeline_questions,
        "pipeline_all_questions": args.pipeline_all_questions,
        "pipeline_all_limit": args.pipeline_all_limit, "pipeline_model": args.pipeline_model,
        "redis_requests": args.redis_requests, "num_results": args.num_results,
    }
    config = dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
    return dataclasses.replace(
        config, floor=not args.skip_floor, pipeline=not args.skip_pipeline,
        redis_bench=not args.skip_redis_bench,
    )


def _side_by_side(args: argparse.Namespace, settings: Settings) -> int:
    from qasearch.bench import report
    from qasearch.bench.side_by_side import SideBySide

    folder, _ = report.resolve_output(args.output)
    config = _config(args)
    url = gateway.url(settings, "/qasearch")
    bench = SideBySide(settings, url, _questions(args.questions), config, log=print)
    try:
        results, raw = bench.run()
    except (RuntimeError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if args.eval_limit:
        results["quality"] = _quality(args, settings, url)
    if not args.skip_baseline:
        _fair(args, settings, url, bench, results, raw)
    if args.compare_masters:
        results["masters"] = _masters(args, settings, folder)
    folder, written = report.write(args.output or str(folder), results, raw)
    _print_summary(results)
    print(f"written to {folder}: {', '.join(p.name for p in written)}")
    return 0


def _fair(args: argparse.Namespace, settings: Settings, url: str, bench, results: dict,
          raw: dict) -> None:
    """Section d: per K, the system beside the twenty-line alternative (its own process)."""
    from qasearch.bench.baseline import BaselineFailed
    from qasearch.bench.evaluation.squadfile import EvalFileError
    from qasearch.bench.fair import FairConfig, run_fair

    config = FairConfig(
        eval_file=args.eval_file or str(DEFAULT_QUESTIONS), ks=args.baseline_k,
        questions=args.baseline_questions or (5 if args.quick else 30),
        seconds_per_k=args.baseline_seconds or (30.0 if args.quick else 120.0))
    try:
        summary, rows = run_fair(settings, url, bench.manifest, results["in_process_threads"],
                                 config, args.pipeline_model, log=print)
    except (BaselineFailed, EvalFileError, RuntimeError, OSError) as exc:
        print(f"d. fair baseline skipped: {exc}")
        results["baseline_skipped"] = str(exc)
        return
    results["baseline"] = summary
    raw.update(rows)


def _masters(args: argparse.Namespace, settings: Settings, folder: Path) -> dict:
    """Section e: the same corpus and questions on fresh clusters of each master count."""
    from qasearch.bench.fair import answerable
    from qasearch.bench.masters import MastersConfig, run_masters
    from qasearch.bench.snapshot import stored_texts

    passages = stored_texts(settings)
    if not passages:
        raise CommandError("--compare-masters: the running system holds no passages")
    questions = [q.question for q in answerable(args.eval_file or str(DEFAULT_QUESTIONS),
                                                args.masters_queries)]
    config = MastersConfig(sizes=args.compare_masters, queries=len(questions),
                           top_k=args.masters_top_k)
    return run_masters(lambda n: _scratch_settings(settings, args, folder, f"masters-{n}"),
                       _scale_package(settings), passages, questions, config, log=print)


def _quality(args: argparse.Namespace, settings: Settings, url: str) -> dict:
    """Open-domain EM/F1 of the first --eval-limit questions, beside the speed figures;
    recall of the gold paragraph only when the file's paragraphs are the loaded corpus."""
    from qasearch.bench.evaluation.open_domain import (
        OpenConfig,
        OpenEvalError,
        check_corpus,
        evaluate_open,
    )
    from qasearch.bench.evaluation.squadfile import EvalFileError, read_eval_questions

    path = args.eval_file or str(DEFAULT_QUESTIONS)
    try:
        questions = read_eval_questions(path, args.eval_limit)
        gold = check_corpus(settings, questions, path, require=False) > 0
        summary, rows = evaluate_open(
            questions, OpenConfig(url=url, handle_impossible=any(q.impossible for q in questions),
                                  api_key=settings.api_key), progress=False, gold_loaded=gold)
    except (EvalFileError, OpenEvalError) as exc:
        raise CommandError(f"quality section: {exc}") from None
    trained = rows[0]["trained"] if rows else None
    return {"file": path, "trained": trained, "open": summary}


def _print_summary(results: dict) -> None:
    r = results.get("ratios", {})
    c1 = results["latency_c1"]
    print("summary:")
    print(f"  /qasearch c=1: p50 {c1['p50_ms']:.0f} ms, p95 {c1['p95_ms']:.0f} ms, "
          f"p99 {c1['p99_ms']:.0f} ms")
    for x in results.get("throughput", []):
        print(f"  /qasearch c={x['concurrency']}: {x['requests_per_s']:.2f} req/s")
    if "floor_latency" in results:
        fl = results["floor_latency"]["floor_ms"]
        print(f"  floor: p50 {fl['p50_ms']:.0f} ms per question, best case "
              f"{results['floor_throughput']['questions_per_s']:.2f} questions/s")

    def x(key: str) -> str:
        return f"{r[key]:.2f}x" if r.get(key) is not None else "-"

    print(f"  system / floor: latency p50 {x('latency_system_over_floor_p50')}, throughput "
          f"{x('throughput_system_over_floor')}")
    if results.get("quality"):
        top = results["quality"]["open"]["top1"]
        print(f"  quality: top-1 EM {top['exact_match']:.1f}, F1 {top['f1']:.1f} on "
              f"{top['questions']} questions of {results['quality']['file']}")
    for row in (results.get("baseline") or {}).get("per_k", []):
        sys_f, alt_f = row.get("system"), row.get("baseline")
        if sys_f and alt_f:
            print(f"  K={row['k']}: system p50 {sys_f['p50_ms']:.0f} ms, F1 {sys_f['f1']:.1f}; "
                  f"twenty-line baseline p50 {alt_f['p50_ms']:.0f} ms, F1 {alt_f['f1']:.1f} "
                  f"(system speed-up {x_of(row.get('latency_speedup'))})")
    for row in (results.get("masters") or {}).get("sizes", []):
        lat = row.get("latency")
        print(f"  {row['masters']} masters: " + (
            f"p50 {lat['p50_ms']:.0f} ms ({x_of(row.get('p50_over_first'))} of the first)"
            if lat else f"failed: {row.get('error')}"))
    if "pipeline" in results:
        print("  speed-up over the HF pipeline: same passages "
              f"{x('pipeline_same_passages_latency_speedup')} (latency), "
              f"{x('pipeline_same_passages_throughput_speedup')} (throughput); every "
              f"passage {x('pipeline_every_passage_latency_speedup')} (latency), "
              f"{x('pipeline_every_passage_throughput_speedup')} (throughput)")


def x_of(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _scale_package(settings: Settings):
    """The package the running system serves, else a freshly built offline MiniLM one."""
    import redis

    from qasearch.core import modelpkg

    try:
        return modelpkg.load_current(settings)
    except (redis.RedisError, OSError, IndexError, modelpkg.ModelPackageError):
        from loaders import model_push

        print("no running system to take the model from: building the offline MiniLM package")
        package, report = model_push.prepare(None, offline_minilm=True)
        model_push.warn(report)
        return package


def _scale(args: argparse.Namespace, settings: Settings) -> int:
    from qasearch.bench import machine, report
    from qasearch.bench.scale import METHOD, ScaleConfig, run_scale
    from qasearch.bench.side_by_side import model_summary, settings_dict

    folder, _ = report.resolve_output(args.output)
    scratch = _scratch_settings(settings, args, folder, "scale-system")
    package = _scale_package(settings)
    # the embedder floor gets the compute the scratch system's workers have
    threads = args.floor_threads or max(
        1, min(os.cpu_count() or 1, scratch.masters * scratch.torch_threads))
    config = ScaleConfig(sizes=args.scale, live_passages=args.scale_live,
                         queries=args.scale_queries, seed=args.seed, embed_threads=threads)
    results = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine.describe(), "settings": settings_dict(scratch),
        "config": {k: v for k, v in dataclasses.asdict(config).items()},
        "model": model_summary(package.manifest),
    }
    results["scale"] = run_scale(scratch, package, config, log=print)
    results["scale_method"] = METHOD
    results["machine"]["load_average_at_end"] = machine.load_average()
    folder, written = report.write(args.output or str(folder), results, {})
    print(f"written to {folder}: {', '.join(p.name for p in written)}")
    failed = [r for r in results["scale"] if r.get("error")]
    if failed:
        raise CommandError(f"{len(failed)} of {len(results['scale'])} sizes failed "
                           f"(logs in {scratch.run_dir})")
    return 0


def _scratch_settings(settings: Settings, args: argparse.Namespace, folder: Path,
                      name: str) -> Settings:
    """Ports and folders of a throw-away system beside the user's, inside ``folder``."""
    return settings.replace(
        base_port=args.scale_base_port or settings.base_port + SCALE_PORT_OFFSET,
        api_port=args.scale_api_port or settings.api_port + SCALE_PORT_OFFSET,
        data_dir=str(folder.resolve() / name / "cluster"),
        run_dir=str(folder.resolve() / name / "run"),
        redis_url="",
    )


def _tune(args: argparse.Namespace, settings: Settings) -> int:
    from qasearch.bench import machine, report
    from qasearch.bench.side_by_side import model_summary, settings_dict
    from qasearch.bench.tuning import TuneConfig, run_tuning

    folder, _ = report.resolve_output(args.output)
    scratch = _scratch_settings(settings, args, folder, "tune-system")
    package = _scale_package(settings)
    config = TuneConfig(corpus=args.tune_corpus, queries=args.queries or 12)
    results = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine.describe(), "settings": settings_dict(scratch),
        "config": dataclasses.asdict(config), "model": model_summary(package.manifest),
    }
    results["tuning"] = run_tuning(scratch, package, _questions(args.questions), config,
                                   log=print)
    folder, written = report.write(args.output or str(folder), results, {})
    print(f"written to {folder}: {', '.join(p.name for p in written)}")
    return 0


def _rewrite(folder: str) -> int:
    from qasearch.bench import report

    try:
        folder_path, written = report.rewrite(folder)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(f"written to {folder_path}: {', '.join(p.name for p in written)}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.report:
        return _rewrite(args.report)
    settings = load_settings().replace(api_host=args.host, api_port=args.port)
    if args.scale:
        return _scale(args, settings)
    if args.tune:
        return _tune(args, settings)
    return _side_by_side(args, settings)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure the running system beside its floor and a HF pipeline",
        description=(
            "On the running system (gateway, workers, cluster), with the same corpus, "
            "questions and model: (a) POST /qasearch with caches off, latency at c=1 and "
            "throughput at each --concurrency; (b) the floor, the same embedder and reader "
            "forward passes in-process; (c) a warm transformers QA pipeline with the same "
            "reader weights over the same passages and over every passage; (d) per K, the "
            "system beside the twenty-line alternative (sentence-transformers top-K + that "
            "pipeline, in its own process); (e) with --compare-masters, the same corpus in "
            "fresh systems of each master count. Writes "
            "results.json, report.md and PNG plots. With --scale, measures synthetic "
            "corpora of each size in fresh systems instead."
        ),
    )
    parser.add_argument("--output", help="results folder (default results/<timestamp>); a "
                        "path ending in .json names the results file, the rest goes beside it")
    parser.add_argument("--report", metavar="DIR",
                        help="measure nothing: render DIR/report.md again from its "
                        "results.json, adding DIR/chaos.json (qasearch chaos --json) if present")
    parser.add_argument("--quick", action="store_true",
                        help="smaller counts and limits (about 2 min on the sample corpus)")
    parser.add_argument("--questions", help="SQuAD-format questions (default: the sample set)")
    parser.add_argument("--queries", type=int,
                        help="c=1 queries, also the floor's questions (default 30, quick 10)")
    parser.add_argument("--warmup", type=int, help="untimed warm-up queries (default 3)")
    parser.add_argument("--concurrency", type=_ints,
                        help="throughput levels, e.g. 4,8,16 (default)")
    parser.add_argument("--level-queries", type=int,
                        help="queries per throughput level (default max(16, 3 x level))")
    parser.add_argument("--level-seconds", type=float,
                        help="time limit per throughput level (default 30, quick 15)")
    parser.add_argument("--num-results", type=int, help="num_results of each query (default 5)")
    parser.add_argument("--host", help="gateway address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gateway port (default 8080)")
    parser.add_argument("--skip-floor", action="store_true", help="no in-process floor")
    parser.add_argument("--floor-threads", type=int,
                        help="torch threads in-process (default: workers' total, at most cores)")
    parser.add_argument("--padding-questions", type=int,
                        help="questions for the bucket-vs-tight padding check (default 8, 0: none)")
    parser.add_argument("--skip-pipeline", action="store_true", help="no HF pipeline baseline")
    parser.add_argument("--pipeline-questions", type=int,
                        help="questions for the pipeline over the same passages "
                             "(default 30, as many as the c=1 run)")
    parser.add_argument("--pipeline-all-questions", type=int,
                        help="questions for the pipeline over every passage (default 2)")
    parser.add_argument("--pipeline-all-limit", type=int,
                        help="cap 'every passage' at this many passages (default: no cap)")
    parser.add_argument("--pipeline-model",
                        help="checkpoint folder of the served reader (when not offline MiniLM)")
    parser.add_argument("--eval-file",
                        help="SQuAD file for the report's answer-quality section and the "
                        "questions of sections d and e (default: the sample questions); open "
                        "domain, caches off")
    parser.add_argument("--eval-limit", type=int, default=30, metavar="N",
                        help="questions of the quality section (default 30; 0: none)")
    fair = parser.add_argument_group(
        "fair baseline (section d): per K, the system beside sentence-transformers top-K + "
        "a warm transformers QA pipeline in its own process, on the same corpus, questions "
        "(the answerable ones of --eval-file), embedder and reader weights")
    fair.add_argument("--baseline-k", type=_ints, default=(1, 3, 5, 10, 20), metavar="K,K,...",
                      help="K values: passages read per question (default 1,3,5,10,20)")
    fair.add_argument("--baseline-questions", type=int, metavar="N",
                      help="questions per K and side (default 30, quick 5)")
    fair.add_argument("--baseline-seconds", type=float, metavar="S",
                      help="time limit per K and side (default 120, quick 30)")
    fair.add_argument("--skip-baseline", action="store_true", help="no section d")
    masters = parser.add_argument_group(
        "master counts (section e, slow): the same corpus and questions in a fresh system of "
        "each size (on the ports of --scale-base-port / --scale-api-port), c=1 latency p50, "
        "caches off")
    masters.add_argument("--compare-masters", type=_ints, metavar="M,M,...",
                         help="master counts to compare, e.g. 3,6 (default: not run)")
    masters.add_argument("--masters-queries", type=int, default=20, metavar="N",
                         help="questions per size (default 20)")
    masters.add_argument("--masters-top-k", type=int, metavar="K",
                         help="top_k of those requests (default: the gateway's)")
    parser.add_argument("--skip-redis-bench", action="store_true",
                        help="do not run redis-benchmark on an answer key")
    parser.add_argument("--redis-requests", type=int,
                        help="requests per redis-benchmark run (default 100000)")
    scale = parser.add_argument_group("scale mode")
    scale.add_argument("--scale", type=_ints, metavar="N,N,...",
                       help="synthetic corpus sizes, each in a fresh system, "
                       "e.g. 1000,10000,100000")
    scale.add_argument("--scale-live", type=int, default=300,
                       help="passages per size that go through the workers' embedding (300)")
    scale.add_argument("--scale-queries", type=int, default=15, help="queries per size (15)")
    scale.add_argument("--seed", type=int, default=0, help="synthetic corpus seed (0)")
    tune = parser.add_argument_group("tuning mode")
    tune.add_argument("--tune", action="store_true",
                      help="restart the workers of a fresh system with each batch size, wait, "
                      "thread count and length bucket in turn and measure each (~15 min)")
    tune.add_argument("--tune-corpus", default=str(SAMPLE / "corpus.jsonl"),
                      help="JSONL corpus of the tuning system (default: the sample corpus)")
    scale.add_argument("--scale-base-port", type=int,
                       help=f"first port of the fresh clusters (default base_port + "
                       f"{SCALE_PORT_OFFSET})")
    scale.add_argument("--scale-api-port", type=int,
                       help=f"their gateway port (default api_port + {SCALE_PORT_OFFSET})")
    parser.set_defaults(func=_bench)
