"""The multi-host layout on three loopback addresses standing in for hosts.

Nodes bind and announce their own host, a replica never on its master's; one
supervisor per host serves the nodes there (replicas too: standby workers); after
``kill -9`` of a master, the replica promoted on another host is served by that
host's supervisor, under a steady stream of queries to two gateways bound to two
other addresses, and the responses become complete again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from gears.supervisor import served
from qasearch.cluster import clusterform, localcluster, localnodes, workers
from qasearch.core import heartbeat, hostlayout, procs
from qasearch.core.clusternodes import cluster_nodes
from qasearch.core.settings import Settings, to_environ
from qasearch.core.topology import masters
from tests.conftest import start_cluster
from tests.helpers import free_port
from tests.system import SAMPLE, post, qasearch, teardown, wait_for
from tests.traffic import Traffic

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
DEADLINE_MS = 8000


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0]


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qasearch", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **to_environ(settings)})


@pytest.mark.parametrize("hosts,replicas", [("a,b,c", 1), ("a,b", 1), ("a,b,c", 2), ("a", 1)])
def test_a_replica_is_placed_off_its_masters_host_while_there_are_enough_hosts(hosts, replicas):
    settings = Settings(hosts=hosts, masters=3, replicas_per_master=replicas, base_port=7000)
    on = {p.port: p.host for p in hostlayout.placements(settings)}
    assert [on[7000 + i] for i in range(3)] == [hosts.split(",")[i % len(hosts.split(","))]
                                                for i in range(3)]
    # the order clusterform takes: node M*(1+r)+m is replica r of master m
    nodes = clusterform.parse_nodes(hostlayout.node_list(settings))
    assert [n.port for n in nodes] == list(range(7000, 7000 + 3 * (1 + replicas)))
    for i, node in enumerate(nodes[3:], start=3):
        master = nodes[i % 3]
        apart = len(hosts.split(",")) > replicas
        assert (node.host != master.host) == apart, (node, master)


def test_nodes_bind_their_own_host_and_replicas_another(tmp_path):
    # "localhost" as the first host: a name, resolved to the address the nodes bind
    settings = start_cluster(tmp_path, hosts="localhost,127.0.0.3,127.0.0.4")
    try:
        found = masters(settings)
        assert [m.host for m in found] == ["127.0.0.1", "127.0.0.3", "127.0.0.4"]
        status = localcluster.status(settings)
        assert status.state == "ok"
        for m in status.masters:  # CLUSTER NODES: CLUSTER SLOTS lists a replica once synced
            assert m.replicas and all(_host(r) != _host(m.address) for r in m.replicas), m
        for spec in localcluster.layout(settings):
            conf = spec.conf.read_text()
            ip = localnodes.loopback_ip(spec.host)
            assert f"\nbind {ip}\n" in conf and f"\ncluster-announce-ip {ip}\n" in conf
        assert {_host(n.address) for n in status.nodes} == {"127.0.0.1", "127.0.0.3",
                                                            "127.0.0.4"}
        assert "WARNING" not in _cli(settings, "cluster", "status").stdout

        nodes = cluster_nodes(settings)
        assert len(nodes) == 6 and not any(n.failed for n in nodes)  # replicas may be "loading"
        by_name = served(nodes, "localhost", standby_workers=True)
        assert sorted(n.role for n in by_name.values()) == ["master", "replica"]
        assert all(n.host == "127.0.0.1" for n in by_name.values())
        masters_only = served(nodes, "127.0.0.3", standby_workers=False)
        assert [n.address for n in masters_only.values()] == [found[1].address]
        assert len(served(nodes, "", standby_workers=True)) == 6

        # the layout is remembered by the node folders: `up` with other hosts refuses
        moved = _cli(settings.replace(hosts=""), "cluster", "up")
        assert moved.returncode != 0 and "created on other hosts" in moved.stderr
        # --host must name a host of the cluster
        nowhere = _cli(settings, "workers", "start", "--host", "127.0.0.9", "--wait", "0")
        assert nowhere.returncode != 0 and "no node of the cluster is on" in nowhere.stderr
    finally:
        localcluster.down(settings, purge=True)


def _worker_pid(settings, host: str, port: int) -> int | None:
    return procs.running_pid(settings.run_dir, workers.worker_name(host, port), "gears.worker")


def _complete(body: dict) -> bool:
    shards = body.get("shards", {})
    return (shards.get("answered") == shards.get("total") and not shards.get("failed")
            and not shards.get("partitions", {}).get("missing"))


@pytest.fixture
def hosts_system(tmp_path):
    """A system on three hosts: one supervisor per host, gateways on 127.0.0.3 and .4."""
    settings = start_cluster(tmp_path, hosts=",".join(HOSTS), max_batch_wait_ms=2.0)
    port = free_port()
    while not all(procs.port_free(h, port) for h in HOSTS[1:]):
        port = free_port()
    gateways = [settings.replace(api_host=h, api_port=port, run_dir=str(tmp_path / f"gw-{h}"))
                for h in HOSTS[1:]]
    try:
        qasearch(settings, "model", "push", "--offline-minilm")
        qasearch(settings, "load", str(SAMPLE), "--format", "jsonl", "--quiet")
        for host in HOSTS:
            out = qasearch(settings, "workers", "start", "--host", host, "--wait", "300")
            assert f"supervisor of {host} started" in out
        for gateway in gateways:
            qasearch(gateway, "serve", "--detach", "--workers", "1")
        yield settings, gateways
    finally:
        for gateway in gateways:
            teardown(gateway, "serve", "--stop")
        teardown(settings, "workers", "stop")
        localcluster.down(settings, purge=True)


def test_one_supervisor_per_host_and_failover_to_another_host(hosts_system):
    settings, (gw3, gw4) = hosts_system
    question = {"search": "What do plates do?", "cache": False, "timeout_ms": DEADLINE_MS}
    answers = [post(gw, question) for gw in (gw3, gw4)]
    for status, body in answers:
        assert status == 200 and _complete(body), body
    assert ([r["answer"] for r in answers[0][1]["results"]]
            == [r["answer"] for r in answers[1][1]["results"]])

    # every node is served by the supervisor of its own host: masters and standbys
    before = masters(settings)
    for m in before:
        assert int(workers.state(settings, m)["pid"]) == _worker_pid(settings, m.host, m.port)
        for host, port in m.replicas:
            assert wait_for(lambda h=host, p=port: _worker_pid(settings, h, p),
                            what=f"the standby worker of {host}:{port}")
    workers.wait_standbys_ready(settings, timeout=300)
    status = _cli(settings, "workers", "status")
    assert status.returncode == 0
    assert [line.split()[1] for line in status.stdout.splitlines()
            if line.startswith("host ")] == HOSTS
    assert status.stdout.count("standby  ready 1") == 3, status.stdout

    victim = before[0]
    assert victim.host == HOSTS[0]
    heir_host, heir_port = victim.replicas[0]
    assert heir_host == HOSTS[1]
    standby = _worker_pid(settings, heir_host, heir_port)
    spec = next(s for s in localcluster.layout(settings) if s.port == victim.port)
    redis_pid = localcluster.node_pid(spec)
    assert redis_pid and standby

    def promoted_and_served():
        now = masters(settings)
        heir = next((m for m in now if m.ranges == victim.ranges), None)
        if heir is None or heir.address != f"{heir_host}:{heir_port}":
            return None
        state = workers.state(settings, heir)
        return heir if heartbeat.is_ready(state) and all(
            heartbeat.is_ready(workers.state(settings, m)) for m in now) else None

    body = lambda n: {**question, "search": f"What do plates do? ({n})"}  # noqa: E731
    with Traffic(gw3, body, pause_s=0.05) as t3, Traffic(gw4, body, pause_s=0.05) as t4:
        t3.more(3, "before the kill")
        killed_at = time.monotonic()
        os.kill(redis_pid, signal.SIGKILL)
        heir = wait_for(promoted_and_served, timeout=120,
                        what="the replica on the next host to be promoted and served")
        served_at = time.monotonic()
        for traffic in (t3, t4):
            wait_for(lambda t=traffic: any(o.started > served_at and _complete(o.body)
                                           for o in t.outcomes),
                     timeout=60, what="complete answers after the failover")
    # the standby process of host 127.0.0.3's supervisor became the master's worker
    assert int(workers.state(settings, heir)["pid"]) == standby
    assert _worker_pid(settings, heir_host, heir_port) == standby
    # the failed node's worker on 127.0.0.2 was stopped by its supervisor
    wait_for(lambda: _worker_pid(settings, victim.host, victim.port) is None,
             what="the worker of the failed master to stop")

    outcomes = t3.outcomes + t4.outcomes
    after = [o for o in outcomes if o.started > killed_at]
    print(f"\nfailover across hosts: {len(outcomes)} requests, "
          f"{sum(not _complete(o.body) for o in after)} partial after the kill, complete "
          f"again {min(o.ended for o in after if o.started > served_at) - killed_at:.1f} s "
          f"after it")
    assert after
    for sent in outcomes:
        assert sent.status == 200, sent
        assert sent.seconds < DEADLINE_MS / 1000 + 1  # nothing hangs past its deadline
        shards = sent.body["shards"]
        assert shards["answered"] + len(shards["failed"]) == shards["total"]
        for failure in shards["failed"]:
            assert failure["reason"] and failure["partitions"]

    # the old master comes back on its own host, as the heir's replica, with a standby
    localcluster.up(settings)
    wait_for(lambda: localcluster.status(settings).state == "ok", what="cluster ok")
    returned = next(n for n in localcluster.status(settings).nodes if n.port == victim.port)
    assert returned.role == "replica" and returned.address == victim.address
    assert returned.replica_of == heir.address
    wait_for(lambda: _worker_pid(settings, victim.host, victim.port),
             what="a standby worker for the returned node on its own host")
