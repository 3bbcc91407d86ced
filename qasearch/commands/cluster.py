"""``qasearch cluster up|down|status``: the local Redis Cluster on loopback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from qasearch.cluster import localcluster
from qasearch.commands import cluster_addnode
from qasearch.core import credentials, hostlayout
from qasearch.core.errors import CommandError
from qasearch.core.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings().replace(
        masters=args.masters, replicas_per_master=args.replicas, base_port=args.base_port,
        data_dir=args.data_dir, host=args.host, hosts=args.hosts,
    )
    if args.data_dir and not os.environ.get(credentials.PASSWORD_VAR):
        # a generated password belongs to its data folder: look it up for this one
        settings = settings.replace(redis_password=credentials.stored_password(
            settings.data_dir, settings.secrets_dir))
    return settings


def _with_password(settings: Settings) -> Settings:
    """``settings`` with a password: the given one, else a new one stored outside the repo."""
    if settings.redis_password:
        return settings
    if any(Path(settings.data_dir).glob("*/auth.conf")):
        where = credentials.secret_file(settings.data_dir, settings.secrets_dir)
        raise CommandError(
            f"the cluster in {settings.data_dir} already has a password, which is neither in "
            f"QASEARCH_REDIS_PASSWORD nor in {where}; set it, or `cluster down --purge` first"
        )
    password, path = credentials.generate_password(
        settings.data_dir, settings.redis_username, settings.secrets_dir)
    print(f"generated the Redis password of user {settings.redis_username!r}; it is kept in "
          f"{path} (mode 0600), where every qasearch command finds it")
    return settings.replace(redis_password=password)


def _passages_line(status: localcluster.ClusterStatus) -> str:
    present = "unknown" if status.passages is None else str(status.passages)
    if status.passages_recorded is None:
        return f"passages {present} (no count recorded by the loaders)"
    line = f"passages {present} of {status.passages_recorded} recorded by the loaders"
    if _missing(status):
        line += (f": {status.passages_recorded - status.passages} MISSING (lost in a restart "
                 f"or a failover; see each node's redis.log)")
    return line


def _missing(status: localcluster.ClusterStatus) -> bool:
    return (status.passages is not None and status.passages_recorded is not None
            and status.passages < status.passages_recorded)


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0]


def _print_hosts(status: localcluster.ClusterStatus) -> None:
    """Per host, its nodes; and every master that shares a host with a replica of its own
    (losing that host would lose both copies of its partitions)."""
    hosts = sorted({_host(n.address) for n in status.nodes})
    if len(hosts) < 2:
        return
    for host in hosts:
        here = [f"{n.port} {n.role}" for n in status.nodes if _host(n.address) == host]
        print(f"  host {host}: {', '.join(here)}")
    for m in status.masters:
        for replica in m.replicas:
            if _host(replica) == _host(m.address):
                print(f"  WARNING master {m.address} and its replica {replica} share a host")


def _print_status(status: localcluster.ClusterStatus) -> None:
    print(f"cluster_state {status.state}, {status.partitions} partitions")
    if status.state != "down":
        print(_passages_line(status))
    masters = {m.address: m for m in status.masters}
    for n in status.nodes:
        pid = f"pid {n.pid}" if n.pid else "no pid"
        line = f"  {n.address:<21} {n.role:<8} {n.link_state:<12} {pid:<10} {n.node_id or '-'}"
        if n.replica_of:
            line += f"  replica of {n.replica_of}"
        m = masters.get(n.address)
        if m is not None:
            ranges = ",".join(f"{lo}-{hi}" for lo, hi in m.ranges)
            line += (f"\n      slots {ranges} ({m.slots})  tag {{{m.tag}}}  "
                     f"partitions {','.join(map(str, m.partitions)) or '-'}")
        print(line)
    _print_hosts(status)


def _up(args: argparse.Namespace) -> int:
    settings = _with_password(_settings(args))
    try:
        result = localcluster.up(settings, timeout=args.timeout)
    except localcluster.ClusterError as exc:
        raise CommandError(str(exc)) from None
    if result.already_running:
        print("cluster already running; nothing changed")
    else:
        how = "created" if result.created else "restarted from its data"
        print(f"cluster {how} in {result.seconds:.2f} s "
              f"(started {len(result.started)} node(s)) under {settings.data_dir}")
    if settings.hosts and not os.environ.get("QASEARCH_HOSTS"):
        print(f"every other qasearch command finds these nodes with "
              f"QASEARCH_HOSTS={settings.hosts} in its environment")
    _print_status(result.status)
    return 0


def _down(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        result = localcluster.down(settings, purge=args.purge)
    except localcluster.ClusterError as exc:
        raise CommandError(str(exc)) from None
    print(f"stopped {len(result.stopped)} node(s)"
          + (f": {', '.join(map(str, result.stopped))}" if result.stopped else ""))
    if result.purged:
        print(f"removed node folders under {settings.data_dir}")
        if not result.still_running and credentials.forget_password(
                settings.data_dir, settings.secrets_dir):
            print("removed its generated Redis password")
    elif result.stopped:
        print(f"data kept under {settings.data_dir}; `cluster up` brings it back")
    if result.still_running:
        raise CommandError(
            f"port(s) {', '.join(map(str, result.still_running))} still in use by processes "
            f"without a pid file of ours; not touched"
        )
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        status = localcluster.status(_settings(args))
    except localcluster.ClusterError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
    elif not status.nodes:
        print("no cluster nodes found")
    else:
        _print_status(status)
    if _missing(status) and args.json:
        print("passages missing: fewer in the indexes than the loaders recorded", file=sys.stderr)
    return 0 if status.state == "ok" and not _missing(status) else 1


def _plan(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.nodes:
        print(hostlayout.node_list(settings))
        return 0
    places = hostlayout.placements(settings)
    address = {p.port: p.address for p in places}
    for host in hostlayout.hosts(settings):
        print(f"host {host}")
        for p in places:
            if p.host == host:
                role = "master" if p.master_port is None else (
                    f"replica of {address[p.master_port]}")
                print(f"  port {p.port}  {role}")
    print(f"nodes in layout order (QASEARCH_COMPOSE_NODES of deploy/compose_init.py):\n"
          f"  {hostlayout.node_list(settings)}")
    return 0


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--masters", type=int, help="number of masters (default: settings, 3)")
    p.add_argument("--replicas", type=int, help="replicas per master (default: settings, 1)")
    p.add_argument("--base-port", type=int, help="port of the first node (default: 7000)")
    p.add_argument("--data-dir", help="folder holding one sub-folder per node")
    p.add_argument("--host", help="loopback address to bind (default: 127.0.0.1)")
    p.add_argument("--hosts", help="several loopback addresses, comma-separated, standing in "
                                   "for hosts: master i on host i mod H, its replicas on the "
                                   "next hosts (default: QASEARCH_HOSTS, else --host)")
    return p


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cluster", help="start, stop or inspect the local Redis Cluster",
        description="A Redis Cluster on loopback: masters with replicas, slots cut so every "
                    "master owns the same number of partitions.",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = _common()
    p = sub.add_parser(
        "up", parents=[common], help="start the cluster (no-op if it already runs)",
        description="Start every node, assign slots, attach replicas and wait for "
                    "cluster_state:ok. Restarts a stopped cluster from its data. Every node "
                    "refuses clients that are not the ACL user QASEARCH_REDIS_USERNAME "
                    "(default qasearch) with the password QASEARCH_REDIS_PASSWORD; when that "
                    "is unset, a strong one is generated and kept in a private file in "
                    "QASEARCH_SECRETS_DIR (default ~/.config/qasearch).",
    )
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the cluster to be ready (default: 30)")
    p.set_defaults(func=_up)
    p = sub.add_parser(
        "down", parents=[common], help="stop the nodes (data kept unless --purge)",
        description="Stop the nodes started by `cluster up` (found by their pid files).",
    )
    p.add_argument("--purge", action="store_true", help="also delete the node folders and data")
    p.set_defaults(func=_down)
    p = sub.add_parser(
        "status", parents=[common], help="nodes, roles, slots and partitions per master",
        description="Show every node and, per master, its slots, node tag and partitions. "
                    "Also the passages in the partitions' indexes against those the loaders "
                    "recorded. Exit code 1 unless cluster_state is ok and no recorded passage "
                    "is missing.",
    )
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=_status)
    p = sub.add_parser(
        "plan", parents=[common], help="which node goes on which host (starts nothing)",
        description="Print, per host of --hosts (any names, not only loopback), the nodes "
                    "the layout puts there: what to start on each real host. --nodes prints "
                    "them as one HOST:PORT list in layout order, as deploy/compose_init.py "
                    "takes it to form the cluster.",
    )
    p.add_argument("--nodes", action="store_true", help="only the HOST:PORT list")
    p.set_defaults(func=_plan)
    cluster_addnode.register(sub, common, _settings)
