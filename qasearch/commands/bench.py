"""``qasearch bench``: measure the running system end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qasearch import gateway
from qasearch.bench import measure_latency
from qasearch.errors import CommandError
from qasearch.questions import read_squad_questions
from qasearch.redisbench import measure as measure_redis
from qasearch.settings import load_settings

DEFAULT_QUESTIONS = Path(__file__).resolve().parents[2] / "data" / "sample" / "questions.json"


def _bench(args: argparse.Namespace) -> int:
    settings = load_settings().replace(api_host=args.host, api_port=args.port)
    try:
        questions = read_squad_questions(args.questions)
    except (OSError, ValueError, KeyError) as exc:
        raise CommandError(f"cannot read questions from {args.questions}: {exc}") from None
    url = gateway.url(settings, "/qasearch")
    print(f"latency: {args.queries} queries, one at a time, caches off, to {url}")
    try:
        report = measure_latency(url, questions, args.queries)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"  p50 {report.p50_ms:.1f} ms   p95 {report.p95_ms:.1f} ms   p99 {report.p99_ms:.1f} ms"
        f"   mean {report.mean_ms:.1f} ms   ({report.queries} ok, {report.errors} errors,"
        f" {report.partial} partial)"
    )
    results = {"latency_c1": report.as_dict()}
    if not args.skip_redis_bench:
        try:
            cache = measure_redis(settings, url, questions[0].question, args.redis_requests)
        except (RuntimeError, OSError) as exc:
            raise CommandError(f"redis-benchmark part failed: {exc}") from None
        print("\n".join(cache.lines()))
        results["answer_cache"] = cache.as_dict()
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2))
        print(f"  written to {args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure /qasearch latency against the running gateway",
        description="Send sample questions to the running gateway and report p50/p95/p99.",
    )
    parser.add_argument("--queries", type=int, default=60, help="number of queries (default 60)")
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS),
                        help="SQuAD-format file of questions (default: the sample set)")
    parser.add_argument("--host", help="gateway address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gateway port (default 8080)")
    parser.add_argument("--output", help="write the figures as JSON to this file")
    parser.add_argument("--skip-redis-bench", action="store_true",
                        help="do not run redis-benchmark on an answer key")
    parser.add_argument("--redis-requests", type=int, default=100_000,
                        help="requests per redis-benchmark run (default 100000)")
    parser.set_defaults(func=_bench)
