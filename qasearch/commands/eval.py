"""``qasearch eval FILE``: answer quality (SQuAD EM/F1), reader only and open domain."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from qasearch.bench.evaluation.squadfile import EvalFileError, read_eval_questions
from qasearch.cluster import gateway
from qasearch.core.errors import CommandError
from qasearch.core.settings import Settings, load_settings


def _served_model(settings: Settings):
    """The package the cluster serves, loaded as the workers load it."""
    import redis
    from redis.exceptions import RedisClusterException

    from qasearch.core import modelpkg
    from qasearch.core.models import LoadedModel

    try:
        package = modelpkg.load_current(settings)
    except (redis.RedisError, RedisClusterException, OSError, IndexError) as exc:
        raise CommandError(f"cluster unreachable at {settings.startup_url} ({exc}); "
                           "or score a folder with --model") from None
    except modelpkg.ModelPackageError as exc:
        raise CommandError(f"no model package to score: {exc}") from None
    return LoadedModel.from_package(package, threads=os.cpu_count() or 1)


def _reader(args: argparse.Namespace, settings: Settings, progress: bool) -> dict:
    from qasearch.bench.evaluation import reader_eval

    options = {"limit": args.limit, "max_seq_len": args.max_seq_len,
               "doc_stride": args.doc_stride, "progress": progress, "settings": settings}
    if args.model:
        from loaders.model_push import ModelPushError

        try:
            scores = reader_eval.evaluate_reader_folder(args.model, args.file, **options)
        except ModelPushError as exc:
            raise CommandError(str(exc)) from None
        name, trained = args.model, None
    else:
        model = _served_model(settings)
        scores = reader_eval.evaluate_package(model, args.file, **options)
        name, trained = f"served package {model.version}", model.trained
    out = scores.to_dict()
    out.update(reader=name, trained=trained)
    if scores.handle_impossible:
        out["calibration"] = reader_eval.calibration_of(scores.predictions, Path(args.file).name)
    print(f"reader only: EM {scores.exact_match:.1f}  F1 {scores.f1:.1f}  on "
          f"{scores.questions} questions ({scores.ms_per_question:.0f} ms per question)")
    return out


def _open(args: argparse.Namespace, settings: Settings, questions, progress: bool) -> dict:
    from qasearch.bench.evaluation.open_domain import (
        OpenConfig,
        OpenEvalError,
        check_gateway,
        evaluate_open,
    )

    config = OpenConfig(url=gateway.url(settings, "/qasearch"),
                        handle_impossible=any(q.impossible for q in questions),
                        top_k=args.top_k, api_key=settings.api_key)
    try:
        check_gateway(config.url)
        _wait_for_corpus(settings, questions, args.file, args.wait)
        summary, rows = evaluate_open(questions, config, progress=progress)
    except OpenEvalError as exc:
        raise CommandError(str(exc)) from None
    top = summary["top1"]
    recall = (summary["recall_at"] or {}).get("all")
    print(f"open domain: top-1 EM {top['exact_match']:.1f}  F1 {top['f1']:.1f}  on "
          f"{summary['questions']} questions; gold paragraph read for "
          f"{100.0 * recall:.1f} %, {summary['passages_read_mean']:.1f} passages read, "
          f"p50 {summary['latency']['p50_ms']:.0f} ms")
    summary["trained"] = rows[0]["trained"] if rows else None
    return {**summary, "rows": rows}


def _wait_for_corpus(settings: Settings, questions, path: str, wait_s: float) -> None:
    """check_corpus, tried again for up to ``wait_s`` while the workers tokenise."""
    from qasearch.bench.evaluation.open_domain import OpenEvalError, check_corpus

    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        try:
            check_corpus(settings, questions, path)
            return
        except OpenEvalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2.0)


def _sample(questions: list, n: int, seed: int) -> list:
    """``n`` questions spread over the whole file (seeded), in file order: the first N
    of a SQuAD file are one or two articles, a sample is every article's share."""
    import random

    if n >= len(questions):
        return questions
    keep = set(random.Random(seed).sample(range(len(questions)), n))
    return [q for i, q in enumerate(questions) if i in keep]


def _eval(args: argparse.Namespace) -> int:
    from qasearch.bench.evaluation import report

    if args.limit is not None and args.limit < 1:
        raise CommandError("--limit must be at least 1")
    if args.model and args.mode == "open":
        raise CommandError("--model scores the reader only: use --mode reader or both")
    settings = load_settings().replace(api_host=args.host, api_port=args.port)
    try:
        questions = read_eval_questions(args.file, args.limit)
    except EvalFileError as exc:
        raise CommandError(str(exc)) from None
    if args.sample is not None:
        if args.sample < 1:
            raise CommandError("--sample must be at least 1")
        if args.mode != "open":
            raise CommandError("--sample applies to --mode open (use --limit for the reader)")
        questions = _sample(questions, args.sample, args.seed)
    progress = not args.quiet and sys.stderr.isatty()
    results: dict = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "file": args.file,
                     "questions": len(questions), "limit": args.limit, "mode": args.mode,
                     "sample": args.sample, "seed": args.seed if args.sample else None}
    rows: dict = {}
    if args.mode in ("open", "both"):  # first: it needs nothing of the reader run
        opened = _open(args, settings, questions, progress)
        rows["open"] = opened.pop("rows")
        results["open"] = opened
        results["trained"] = opened["trained"]
    if args.mode in ("reader", "both"):
        read = _reader(args, settings, progress)
        rows["reader"] = read.pop("predictions")
        results["reader"] = read
        results.setdefault("trained", read["trained"])
    folder, written = report.write(args.output, {**results, "rows": rows})
    print(f"written to {folder}: {', '.join(p.name for p in written)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="score answer quality on a SQuAD file (EM/F1): reader only, open domain",
        description=(
            "Score answers with the official SQuAD normalisation (exact match and token F1, "
            "best over a question's reference answers; v2.0 unanswerable questions score "
            "only an empty answer). Reader only: each question against its own paragraph, "
            "through the workers' windows and decoding, with the served model package (or "
            "--model FOLDER). Open domain: every question through the running gateway with "
            "caches off, over the file's paragraphs loaded as the corpus (qasearch load "
            "FILE first): top-1 EM/F1, a gold answer among the top 5, recall@k of the gold "
            "paragraph among the passages read, passages read, latency. Writes "
            "results.json and report.md."
        ),
    )
    parser.add_argument("file", help="SQuAD v1.1 or v2.0 JSON file")
    parser.add_argument("--mode", choices=("reader", "open", "both"), default="both",
                        help="what to score (default both)")
    parser.add_argument("--limit", type=int, metavar="N", help="the first N questions only")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="open domain: N questions drawn from the whole file (seeded)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="S",
                        help="open domain: wait up to S seconds for the workers to tokenise "
                        "the file's paragraphs (after a load)")
    parser.add_argument("--output", help="results folder (default results/<timestamp>); a "
                        "path ending in .json names the results file")
    parser.add_argument("--model", metavar="FOLDER",
                        help="reader only: a Hugging Face QA folder instead of the served "
                        "package")
    parser.add_argument("--max-seq-len", type=int,
                        help="reader only: window length (default: the served setting, 384)")
    parser.add_argument("--doc-stride", type=int,
                        help="reader only: window overlap (default: the served setting, 128)")
    parser.add_argument("--top-k", type=int,
                        help="open domain: passages read per question (default: gateway's)")
    parser.add_argument("--host", help="gateway address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gateway port (default 8080)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_eval)
