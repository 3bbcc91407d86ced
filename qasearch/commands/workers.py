"""``qasearch workers start|stop|status``: the shard workers, one per master."""

from __future__ import annotations

import argparse

from qasearch import workers
from qasearch.errors import CommandError
from qasearch.settings import load_settings


def _start(args: argparse.Namespace) -> int:
    settings = load_settings()
    pid, started = workers.start(settings)
    print(f"supervisor {'started' if started else 'already running'} (pid {pid})")
    if args.wait > 0:
        try:
            ready = workers.wait_ready(settings, args.wait)
        except TimeoutError as exc:
            raise CommandError(f"{exc}; see {settings.run_dir}/worker-*.log") from None
        for s in ready:
            print(f"  {s['master']}  ready  model {s.get('model')}  passages {s.get('passages')}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    stopped = workers.stop(load_settings())
    print("workers stopped" if stopped else "workers were not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    for s in workers.states(load_settings()):
        if "pid" not in s:
            print(f"{s['master']}  no worker")
            continue
        print(
            f"{s['master']}  pid {s['pid']}  ready {s.get('ready')}  model {s.get('model')}"
            f"  trained {s.get('trained')}  partitions {s.get('partitions') or '-'}"
            f"  passages {s.get('passages')}  requests {s.get('requests')}"
            + (f"  loading {s['loading']}" if s.get("loading") else "")
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "workers", help="start, stop or inspect the shard workers (one per master)",
        description="Shard workers: one process per master node, kept alive by a supervisor.",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("start", help="start the supervisor and its workers in the background")
    p.add_argument("--wait", type=float, default=120.0,
                   help="seconds to wait for every worker to be ready (0: do not wait)")
    p.set_defaults(func=_start)
    p = sub.add_parser("stop", help="stop the supervisor and its workers")
    p.set_defaults(func=_stop)
    p = sub.add_parser("status", help="each master's worker: pid, model, partitions, passages")
    p.set_defaults(func=_status)
