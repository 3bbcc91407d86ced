"""``qasearch cluster add-node``: grow the local cluster by one master and rebalance."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from qasearch.cluster import localcluster, scaleout
from qasearch.core.errors import CommandError
from qasearch.core.settings import Settings


def _run(args: argparse.Namespace, settings_of: Callable[[argparse.Namespace], Settings]) -> int:
    settings = settings_of(args)
    say = (lambda _line: None) if args.json else print
    try:
        result = scaleout.add_node(settings, replicas=settings.replicas_per_master,
                                   timeout=args.timeout,
                                   worker_timeout=args.worker_timeout, say=say)
    except localcluster.ClusterError as exc:
        raise CommandError(str(exc)) from None
    shares = scaleout.share(result.status)
    if args.json:
        print(json.dumps({
            "master": result.master, "replicas": result.replicas, "tag": result.tag,
            "partitions_moved": result.partitions_moved, "slots_moved": result.slots_moved,
            "keys_moved": result.keys_moved, "seconds": round(result.seconds, 2),
            "waited_for_workers": result.waited_for_workers, "partitions_per_master": shares,
        }, indent=2))
        return 0
    print(f"added master {result.master} (tag {{{result.tag}}}) in {result.seconds:.1f} s: "
          f"{result.partitions_moved} partitions, {result.slots_moved} slots, "
          f"{result.keys_moved} keys moved")
    if not result.waited_for_workers:
        print("no workers running (`qasearch workers start`): partitions were moved "
              "without waiting for a worker to load them")
    for address, count in shares.items():
        print(f"  {address:<21} {count} partitions")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             settings_of: Callable[[argparse.Namespace], Settings]) -> None:
    p = sub.add_parser(
        "add-node", parents=[common], help="add a master (and replicas) and rebalance",
        description="Start a new master with --replicas replicas (default: as many as "
                    "every master has; same config as `cluster up`), join them, give the "
                    "new master a node tag and the model package, "
                    "then move whole partitions so every master owns an equal share, in "
                    "the layout `cluster up` would create. Each partition is copied to its "
                    "new node and switched only once that node's worker has loaded it, so "
                    "queries keep covering every partition. Do not load documents while "
                    "it runs.",
    )
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the new nodes to join (default: 60)")
    p.add_argument("--worker-timeout", type=float, default=scaleout.WORKER_WAIT_S,
                   help="seconds to wait for a worker to be ready or to load a partition "
                        f"(default: {scaleout.WORKER_WAIT_S:.0f})")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=lambda args: _run(args, settings_of))
