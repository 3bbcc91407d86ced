"""``qasearch model push|list``: package a reader + embedder into every master, or list them."""

from __future__ import annotations

import argparse
import time

import redis

from qasearch.bench.evaluation.squadfile import EvalFileError, read_eval_questions
from qasearch.core import keys, modelpkg
from qasearch.core.errors import CommandError
from qasearch.core.settings import load_settings
from qasearch.core.topology import masters, node_client


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _shipped_reader() -> str:
    """The folder of the reader that ships with qasearch, rebuilt (and digest-checked)."""
    from loaders import shipped_reader

    try:
        folder = shipped_reader.rebuild()
    except shipped_reader.ShippedReaderError as exc:
        raise CommandError(f"the shipped reader cannot be rebuilt: {exc}") from None
    print(f"no SOURCE given: the trained reader that ships with qasearch "
          f"({shipped_reader.SHIPPED_DIR.name}, rebuilt in {folder})")
    return str(folder)


def _quantized_scorer(eval_file: str | None):
    """EM/F1 of the fp32 and the quantised reader on ``eval_file`` (the sample
    questions by default), and how often their spans agree."""
    from functools import partial
    from pathlib import Path

    from qasearch.bench.agreement import SAMPLE_QUESTIONS, quantized_quality

    return partial(quantized_quality,
                   questions_path=Path(eval_file) if eval_file else SAMPLE_QUESTIONS)


def _push(args: argparse.Namespace) -> int:
    from loaders import model_push

    if args.source and args.offline_minilm:
        raise CommandError("give either SOURCE or --offline-minilm, not both")
    if args.eval_file:
        if not args.quantize:
            raise CommandError("--eval-file scores a quantised reader: give --quantize too")
        try:  # refuse a file that cannot be scored before minutes of tracing
            read_eval_questions(args.eval_file)
        except EvalFileError as exc:
            raise CommandError(str(exc)) from None
    settings = load_settings()
    source = args.source
    try:
        if not source and not args.offline_minilm:
            source = _shipped_reader()
        package, report = model_push.prepare(
            source, embedder=args.embedder, offline_minilm=args.offline_minilm,
            max_seq_len=args.max_seq_len, quantize=args.quantize,
            score_quantized=_quantized_scorer(args.eval_file) if args.quantize else None,
            no_answer_threshold=args.no_answer_threshold,
        )
    except model_push.ModelPushError as exc:
        raise CommandError(str(exc)) from None
    model_push.warn(report)
    m = package.manifest
    print(f"model {package.version}  {m['name']}  trained={str(package.trained).lower()}")
    print(f"  reader   {_mib(m['sizes']['reader'])}  max_seq_len {m['reader']['max_seq_len']}"
          f"  quantized {m['reader']['quantized']}  inputs {','.join(m['reader']['inputs'])}"
          f"  traced in {report.timings['trace_reader_s']:.1f} s"
          f" (max diff vs eager {report.trace_diff['reader']:.1e})")
    rule = m["reader"].get("no_answer")
    print(f"  no answer when log(null) - log(best span) > {rule['threshold']:g} "
          f"(chosen on {rule['chosen_on']})" if rule else
          "  no answer when the null score beats the best span (the pipeline's rule: this "
          "reader has no calibrated threshold)")
    print(f"  embedder {_mib(m['sizes']['embedder'])}  dim {m['embedder']['dim']}"
          f"  max_seq_len {m['embedder']['max_seq_len']}"
          f"  traced in {report.timings['trace_embedder_s']:.1f} s")
    if report.quality is not None:
        q = report.quality
        print(f"  {args.quantize} reader  EM {q.quantized['exact_match']:.1f}  "
              f"F1 {q.quantized['f1']:.1f}  beside fp32  EM {q.fp32['exact_match']:.1f}  "
              f"F1 {q.fp32['f1']:.1f}  on the same {q.questions} questions "
              f"(reader only; {q.same_span:.1%} identical best spans)")
    started = time.perf_counter()
    try:
        written = modelpkg.push_to_cluster(
            settings, package, progress=not args.quiet, keep=args.keep
        )
    except (redis.RedisError, modelpkg.ModelPackageError) as exc:
        raise CommandError(f"push failed: {exc}") from None
    took = time.perf_counter() - started
    for master in written:
        print(f"  stored on {master.address} under {{{master.tag}}}, current")
    print(f"pushed {_mib(package.size)} to {len(written)} masters in {took:.1f} s")
    if not package.trained:
        model_push.warn(report)  # repeated after the progress output, so it stays visible
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        nodes = masters(settings)
    except redis.RedisError as exc:
        raise CommandError(f"cluster unreachable at {settings.startup_url}: {exc}") from None
    for master in nodes:
        client = node_client(master.host, master.port, settings, socket_timeout=10)
        try:
            current = modelpkg.current_version(client, master.tag)
            versions = modelpkg.list_versions(client, master.tag)
            print(f"{master.address} {{{master.tag}}}: {len(versions)} version(s)")
            for version in versions:
                try:
                    m = modelpkg.read_manifest(client, master.tag, version)
                    size = sum(m["sizes"].values())
                    detail = (f"{m['name']}  trained={str(m['trained']).lower()}  "
                              f"{_mib(size)}  created {m['created']}")
                except modelpkg.ModelPackageError as exc:
                    detail = f"BROKEN: {exc}"
                mark = "*" if version == current else " "
                print(f"  {mark} {version}  {detail}")
            served, loading = client.hmget(keys.worker_state(master.tag), ["model", "loading"])
            swap = f"  (loading {loading.decode()})" if loading else ""
            print(f"    worker serves: {served.decode() if served else '(no live worker)'}{swap}")
        finally:
            client.close()
    return 0


def _rollback(args: argparse.Namespace) -> int:
    settings = load_settings()
    nodes = masters(settings)
    for master in nodes:
        client = node_client(master.host, master.port, settings, socket_timeout=10)
        try:
            old, new = modelpkg.rollback(client, master.tag)
        except modelpkg.ModelPackageError as exc:
            raise CommandError(f"{master.address}: {exc}") from None
        finally:
            client.close()
        print(f"{master.address}: {old} -> {new}")
    print("workers switch to it within about a second (qasearch model list shows it)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model", help="push a QA reader (+ embedder) to every master, or list stored models",
        description="Model packages: TorchScript reader and embedder stored on every master.",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser(
        "push", help="trace a Hugging Face QA checkpoint and store it on every master",
        description="Load an extractive-QA checkpoint (hub id or local folder), trace it to "
        "TorchScript, check the trace, and store it on every master as the current model.",
    )
    p.add_argument("source", nargs="?", help="hub id or local folder of an extractive-QA model "
                   "(default: the trained MiniLM reader shipped in models/minilm-squad)")
    p.add_argument("--embedder", help="sentence-transformers folder (default: all-MiniLM-L6-v2)")
    p.add_argument("--offline-minilm", action="store_true",
                   help="reader = MiniLM with a seeded UNTRAINED QA head (tests, no hub needed)")
    p.add_argument("--max-seq-len", type=int, default=384,
                   help="longest reader sequence (capped by the model)")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantisation of the reader")
    p.add_argument("--eval-file", metavar="FILE",
                   help="with --quantize: SQuAD file whose questions score both readers "
                   "(default: data/sample/questions.json)")
    p.add_argument("--no-answer-threshold", type=float, metavar="T",
                   help="say 'no answer' when log(null) - log(best span) is above T "
                   "(default: the folder's no_answer.json, chosen on a dev file; else 0)")
    p.add_argument("--keep", type=int, default=2,
                   help="versions to keep per master, current included (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_push)
    p = sub.add_parser("list", help="stored model versions per master (* = current)")
    p.set_defaults(func=_list)
    p = sub.add_parser("rollback", help="make the previously pushed version current again",
                       description="On every master, make the version pushed before the "
                       "current one current again; workers swap to it without a restart.")
    p.set_defaults(func=_rollback)
    from qasearch.commands import model_train

    model_train.register(sub)
