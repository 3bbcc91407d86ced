"""``qasearch redis-bench``: redis-benchmark on a real answer key vs a plain GET."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qasearch.bench.redisbench import measure
from qasearch.cluster import gateway
from qasearch.core.errors import CommandError
from qasearch.core.settings import load_settings


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    url = gateway.url(settings, "/qasearch")
    try:
        report = measure(settings, url, args.question, args.requests, args.clients)
    except (RuntimeError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print("\n".join(report.lines()))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report.as_dict(), indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "redis-bench", help="redis-benchmark on a real answer key beside a plain GET",
        description=(
            "Ask the gateway a question, take the answer key of its best answer, and run "
            "redis-benchmark on it and on a small plain key on the same node; also measure "
            "the cached /qasearch latency."
        ),
    )
    parser.add_argument("--question", default="What causes the tides?")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--output", help="write the figures as JSON to this file")
    parser.set_defaults(func=_run)
