"""``qasearch workers start|stop|status [--host A]``: the shard workers, one per node."""

from __future__ import annotations

import argparse

import redis

from qasearch.cluster import workers
from qasearch.core import hostlayout
from qasearch.core.errors import CommandError
from qasearch.core.settings import load_settings


def _start(args: argparse.Namespace) -> int:
    settings = load_settings()
    host = args.host or ""
    if host:
        try:
            elsewhere = workers.hosts_without_nodes(settings, host)
        except redis.RedisError as exc:
            raise CommandError(f"cannot reach the cluster: {exc}") from None
        if elsewhere:
            raise CommandError(f"no node of the cluster is on {host}; its nodes are on "
                               f"{', '.join(elsewhere)}")
    try:
        pid, started = workers.start(settings, host)
    except workers.WorkersError as exc:
        raise CommandError(str(exc)) from None
    which = f"supervisor of {host}" if host else "supervisor"
    print(f"{which} {'started' if started else 'already running'} (pid {pid})")
    if args.wait > 0:
        try:
            ready = workers.wait_ready(settings, args.wait, host=host)
        except TimeoutError as exc:
            raise CommandError(f"{exc}; see {settings.run_dir}/worker-*.log") from None
        for s in ready:
            print(f"  {s['master']}  ready  model {s.get('model')}  passages {s.get('passages')}")
        if host and not ready:
            print(f"  no master on {host} now; its replicas' workers stand by")
        if settings.standby_workers:
            try:
                standbys = workers.wait_standbys_ready(settings, args.wait, host=host)
            except TimeoutError as exc:
                raise CommandError(f"{exc}; see {settings.run_dir}/worker-*.log") from None
            for address, s in sorted(standbys.items()):
                print(f"  {address}  standby ready  passages {s.get('passages')}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    stopped = workers.stop(load_settings(), args.host)
    if not stopped:
        print("workers were not running" + (f" for {args.host}" if args.host else ""))
    for host in stopped:
        print(f"workers of {host} stopped" if host else "workers stopped")
    return 0


def _worker_line(w: workers.NodeWorker, standby: dict) -> str:
    s = w.heartbeat
    head = f"  {w.address:<21} {w.role:<8}" + ("" if w.health == "online" else f" {w.health}")
    local = f"  (worker pid {w.local_pid} started here)" if w.local_pid else ""
    if w.role != "master":
        if standby:
            return head + (f"  standby  ready {int(bool(standby.get('ready')))}  model "
                           f"{(standby.get('model') or {}).get('version')}  passages "
                           f"{standby.get('passages')}" + local)
        return head + ("  standby worker not answering" + local if w.local_pid
                       else "  no worker here")
    if "pid" not in s:
        return head + "  no worker" + local
    return (
        head + f"  pid {s['pid']}  ready {s.get('ready')}  model {s.get('model')}"
        f"  trained {s.get('trained')}  partitions {s.get('partitions') or '-'}"
        f"  passages {s.get('passages')}  requests {s.get('requests')}"
        + (f"  loading {s['loading']}" if s.get("loading") else "")
    )


def _status(args: argparse.Namespace) -> int:
    settings = load_settings()
    running = workers.supervisors(settings)
    try:
        found = workers.node_workers(settings)
        standbys = workers.standby_states(settings)
    except redis.RedisError as exc:
        raise CommandError(f"cannot reach the cluster: {exc}") from None
    if "" in running:
        print(f"supervisor of every node: pid {running['']}")
    for host in sorted({w.host for w in found}):
        if args.host and not hostlayout.same_host(args.host, host):
            continue
        mine = next((pid for h, pid in running.items() if h and hostlayout.same_host(h, host)),
                    None)
        print(f"host {host}" + (f"  supervisor pid {mine}" if mine else ""))
        for w in found:
            if w.host == host:
                print(_worker_line(w, standbys.get(w.address, {})))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "workers", help="start, stop or inspect the shard workers (one per node)",
        description="Shard workers: one process per master node (and per replica, a standby, "
                    "unless QASEARCH_STANDBY_WORKERS=0), kept alive by a supervisor: one for "
                    "every node, or one per host with --host.",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    host_help = ("only the nodes on this host (an address or a name; one supervisor per "
                 "host); default: every node")
    p = sub.add_parser("start", help="start the supervisor and its workers in the background")
    p.add_argument("--host", help=host_help)
    p.add_argument("--wait", type=float, default=120.0,
                   help="seconds to wait for every master's worker (on --host) to be ready "
                        "(0: do not wait)")
    p.set_defaults(func=_start)
    p = sub.add_parser("stop", help="stop the supervisor(s) and their workers")
    p.add_argument("--host", help="only the supervisor of this host (default: every "
                                  "supervisor of the run folder)")
    p.set_defaults(func=_stop)
    p = sub.add_parser("status", help="each node's worker, by host: pid, model, partitions")
    p.add_argument("--host", help="only this host's nodes")
    p.set_defaults(func=_status)
