"""``qasearch chaos``: operational events under a steady query stream, with a report;
or, with ``--soak MINUTES``, a long hold at a share of the saturated throughput."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qasearch.bench import chaos, report, soak
from qasearch.commands.bench import _ints, _questions  # the benchmark's levels and questions
from qasearch.core.errors import CommandError
from qasearch.core.settings import load_settings


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


def _share(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {raw}")
    return value


def _soak(args: argparse.Namespace, settings) -> int:
    """Saturation, then the hold; the table printed and the results written as JSON."""
    if args.events is not None:
        raise CommandError("--soak runs no events: leave out --events")
    config = soak.SoakConfig(
        minutes=args.soak, share=args.soak_share, window_s=args.soak_window_seconds,
        levels=args.soak_levels, level_queries=args.soak_level_queries,
        level_seconds=args.soak_level_seconds)
    try:
        result = soak.run_soak(settings, _questions(None), config,
                               log=lambda line: print(line, flush=True))
    except soak.SoakError as exc:
        raise CommandError(str(exc)) from None
    print(soak.table(result))
    folder, path = report.resolve_output(args.output)
    if not (args.output or "").endswith(".json"):  # a folder: the file is soak.json in it
        path = folder / "soak.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    unanswered = result["total"]["timeout"] + result["total"]["lost"]
    if unanswered:
        print(f"{unanswered} request(s) got no answer at all")
    return 1 if unanswered else 0


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.api_port:
        settings = settings.replace(api_port=args.api_port)
    if args.soak is not None:
        return _soak(args, settings)
    args.events = args.events or ["worker-kill", "model-push"]
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
                    + ". Exit code 1 if any request was lost or an event could not be run. "
                    "With --soak MINUTES, no events: the saturated throughput is measured "
                    "(closed loop at --soak-levels), then --soak-share of it is held for "
                    "MINUTES by an open-loop paced sender, with p50/p99, errors and rates "
                    "per window, every worker's and gateway process's resident memory at "
                    "the start and the end, and the soak targets met or missed; exit code 1 "
                    "if a request got no answer at all.",
    )
    p.add_argument("--events", type=_events, default=None,
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
    soaking = p.add_argument_group("soak (--soak MINUTES instead of events)")
    soaking.add_argument("--soak", type=_positive(float), metavar="MINUTES",
                         help="hold --soak-share of the saturated throughput this long")
    default = soak.SoakConfig  # one place for the defaults: the soak's own
    for flag, kind, value, what in (
        ("--soak-share", _share, default.share, "share of the saturated throughput to hold"),
        ("--soak-window-seconds", _positive(float), default.window_s,
         "length of each report window"),
        ("--soak-levels", _ints, default.levels,
         "closed-loop concurrency levels measuring saturation, comma-separated"),
        ("--soak-level-queries", _positive(int), default.level_queries,
         "at most this many queries per saturation level"),
        ("--soak-level-seconds", _positive(float), default.level_seconds,
         "at most this long per saturation level"),
    ):
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}"
        soaking.add_argument(flag, type=kind, default=value, help=f"{what} (default: {shown})")
    soaking.add_argument("--output", help="soak results folder (default results/<timestamp>, "
                                          "file soak.json); a path ending in .json names "
                                          "the file")
    p.set_defaults(func=_run)
