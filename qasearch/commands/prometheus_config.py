"""``qasearch prometheus-config``: a prometheus.yml that scrapes the gateway and every worker."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qasearch.core import monitoring
from qasearch.core.errors import CommandError
from qasearch.core.settings import load_settings


def _write(args: argparse.Namespace) -> int:
    settings = load_settings()
    interval = args.scrape_interval or settings.metrics_scrape_interval_s
    if interval <= 0:
        raise CommandError(f"--scrape-interval must be positive, got {interval:g}")
    if args.gateway and ":" not in args.gateway:
        raise CommandError(f"--gateway wants HOST:PORT, got {args.gateway!r}")
    # an explicit folder is kept as given: it may be a path inside Prometheus's container
    targets = (Path(args.targets_dir) if args.targets_dir
               else monitoring.targets_dir(settings).resolve())
    text = monitoring.prometheus_config(targets, interval, gateway_static=args.gateway)
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    Path(args.output).write_text(text)
    print(f"wrote {args.output}: gateway and workers from {targets}/*.json every {interval:g}s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prometheus-config", help="write a prometheus.yml scraping the gateway and the workers",
        description=(
            "Write a Prometheus configuration that scrapes the gateway and every shard worker. "
            "Targets are found through the file_sd target files that `qasearch serve` and each "
            "worker keep current in <run_dir>/metrics/targets/, so workers that restart on "
            "another port, or start for a promoted replica, are followed without a reload."
        ),
    )
    parser.add_argument("--output", "-o", help="file to write (default: standard output)")
    parser.add_argument("--scrape-interval", type=float,
                        help="seconds between scrapes (default: setting metrics_scrape_interval_s)")
    parser.add_argument("--targets-dir",
                        help="folder of the target files as Prometheus sees it "
                             "(default: <run_dir>/metrics/targets)")
    parser.add_argument("--gateway", metavar="HOST:PORT",
                        help="scrape the gateway at this fixed address instead of its target file")
    parser.set_defaults(func=_write)
