"""The local cluster on real redis-server processes: layout, config, slots, idempotence,
status and data surviving ``down`` + ``up``."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from qasearch.cli import main
from qasearch.cluster import localcluster
from qasearch.core.partitions import owned_partitions
from qasearch.core.topology import cluster_client, masters
from tests.conftest import start_cluster


def _config(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    return dict(line.split(" ", 1) for line in lines)


def test_up_creates_masters_and_replicas_with_required_config(cluster):
    specs = localcluster.layout(cluster)
    assert len(specs) == 6
    for spec in specs:
        conf = _config(spec.conf)
        assert "m" in conf["notify-keyspace-events"]
        assert conf["cluster-node-timeout"] == "2000"
        assert conf["appendonly"] == "yes"
        assert conf["bind"] == "127.0.0.1"
        assert localcluster.node_pid(spec) is not None
    status = localcluster.status(cluster)
    assert status.state == "ok"
    roles = {n.port: n.role for n in status.nodes}
    base = cluster.base_port
    assert [roles[base + i] for i in range(3)] == ["master"] * 3
    assert [roles[base + 3 + i] for i in range(3)] == ["replica"] * 3
    replica_of = {n.port: n.replica_of for n in status.nodes}
    expected = [f"127.0.0.1:{base + i}" for i in range(3)]
    assert [replica_of[base + 3 + i] for i in range(3)] == expected
    assert all(n.alive and n.link_state == "connected" for n in status.nodes)


def test_each_master_owns_its_share_of_partitions(cluster):
    found = masters(cluster)
    assert len(found) == 3
    partitions = 3 * cluster.partitions_per_master
    owned = [owned_partitions(m.ranges, partitions) for m in found]
    assert [len(o) for o in owned] == [cluster.partitions_per_master] * 3
    assert sorted(sum(owned, [])) == list(range(partitions))
    assert len({m.tag for m in found}) == 3


def test_second_up_is_a_noop(cluster):
    pids = {s.port: localcluster.node_pid(s) for s in localcluster.layout(cluster)}
    result = localcluster.up(cluster)
    assert result.already_running and not result.started and not result.created
    assert {s.port: localcluster.node_pid(s) for s in localcluster.layout(cluster)} == pids


def test_cli_status_json_and_idempotent_up(cluster, monkeypatch, capsys):
    monkeypatch.setattr("qasearch.cli.COMMAND_MODULES", ("cluster",))
    monkeypatch.setenv("QASEARCH_REDIS_PASSWORD", cluster.redis_password)
    flags = ["--base-port", str(cluster.base_port), "--data-dir", cluster.data_dir]
    assert main(["cluster", "up", *flags]) == 0
    assert "cluster already running; nothing changed" in capsys.readouterr().out
    assert main(["cluster", "status", "--json", *flags]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "ok"
    assert sorted(n["role"] for n in status["nodes"]) == ["master"] * 3 + ["replica"] * 3
    assert all(len(m["partitions"]) == cluster.partitions_per_master for m in status["masters"])


def test_down_then_up_brings_data_back(tmp_path):
    settings = start_cluster(tmp_path, masters=3, replicas=0)
    try:
        client = cluster_client(settings)
        client.set("qa:test{p07}:kept", "still here")
        client.close()
        down = localcluster.down(settings)
        assert sorted(down.stopped) == [settings.base_port + i for i in range(3)]
        assert all(localcluster.node_pid(s) is None for s in localcluster.layout(settings))
        t0 = time.monotonic()
        result = localcluster.up(settings)
        assert not result.already_running and not result.created
        assert time.monotonic() - t0 < 15
        client = cluster_client(settings)
        assert client.get("qa:test{p07}:kept") == b"still here"
        client.close()
    finally:
        localcluster.down(settings, purge=True)
    assert not Path(settings.data_dir).exists()


def test_partly_running_cluster_is_completed(tmp_path):
    settings = start_cluster(tmp_path, masters=3, replicas=0)
    try:
        victim = localcluster.layout(settings)[1]
        pid = localcluster.node_pid(victim)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while localcluster.node_pid(victim) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        result = localcluster.up(settings)
        assert result.started == [victim.port] and not result.created
        assert localcluster.status(settings).state == "ok"
    finally:
        localcluster.down(settings, purge=True)
