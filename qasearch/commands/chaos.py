"""``qasearch chaos``: operational events under a steady query stream, with a report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qasearch import chaos
from qasearch.errors import CommandError
from qasearch.settings import load_settings


def _events(raw: str) -> list[str]:
    events = [e.strip() for e in raw.split(",") if e.strip()]
    unknown = [e for e in events if e not in chaos.EVENTS]
    if not events or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown event(s) {', '.join(unknown) or '(none)'}; choose from "
            f"{', '.join(chaos.EVENTS)}")
    return events


def _positive(kind):
    def parse(raw: str):
        value = kind(raw)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {raw}")
        return value
    return parse


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.api_port:
        settings = settings.replace(api_port=args.api_port)
    reports = []
    try:
        for event in args.events:
            print(f"-- {event}: {args.seconds:.0f} s of traffic "
                  f"({args.concurrency} sender(s), caches off)", flush=True)
            reports.append(chaos.run_event(
                settings, event, args.seconds, concurrency=args.concurrency,
                timeout_ms=args.timeout_ms, max_requests=args.max_requests))
    except chaos.ChaosError as exc:
        raise CommandError(str(exc)) from None
    print(chaos.table(reports))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
        print(f"wrote {args.json}")
    lost = sum(r.lost for r in reports)
    if lost:
        print(f"LOST {lost} request(s): they got no answer at all")
    broken = [r.event for r in reports if not r.event_ok]
    if broken:
        print(f"event(s) that could not be run as asked: {', '.join(broken)}")
    return 1 if lost or broken else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "chaos", help="run failure events against the running system under traffic",
        description="Against the running system (local cluster, workers, gateway), run the "
                    "events one at a time under a steady stream of /qasearch queries to "
                    "127.0.0.1 (caches off) and print per event: requests sent, answered "
                    "(complete), partial (missing partitions named), failed (HTTP error), "
                    "lost (no answer at all) and the recovery time. Events: "
                    + ", ".join(chaos.EVENTS)
                    + ". Exit code 1 if any request was lost or an event could not be run.",
    )
    p.add_argument("--events", type=_events, default=["worker-kill", "model-push"],
                   help="comma-separated events, run in this order "
                        "(default: worker-kill,model-push)")
    p.add_argument("--seconds", type=_positive(float), default=20.0,
                   help="seconds of traffic per event, at least until it settled (default: 20)")
    p.add_argument("--concurrency", type=_positive(int), default=2,
                   help="sender threads (default: 2)")
    p.add_argument("--max-requests", type=_positive(int), default=1000,
                   help="at most this many requests per event (default: 1000)")
    p.add_argument("--timeout-ms", type=_positive(int), default=10_000,
                   help="deadline of each request (default: 10000)")
    p.add_argument("--api-port", type=int, help="gateway port (default: settings, 8080)")
    p.add_argument("--json", metavar="FILE", help="also write the reports as JSON to FILE")
    p.set_defaults(func=_run)
