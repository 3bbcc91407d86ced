"""A master killed with SIGKILL under a steady stream of queries.

The standby worker beside its replica answers for its partitions from the
replica's copy at once, and becomes the master's worker when the replica is
promoted: no response that starts more than a second after the kill is partial,
none is lost, none passes its deadline, and what a standby read is marked so. No
passage, tensor or model is lost. Afterwards the old master is started again,
rejoins as a replica, and its worker is a standby again.
"""

from __future__ import annotations

import os
import signal
import time

from qasearch.cluster import localcluster, workers
from qasearch.cluster.workers import wait_standbys_ready
from qasearch.core import keys, modelpkg
from qasearch.core.heartbeat import is_ready
from qasearch.core.partitions import owned_partitions, partition_tag
from qasearch.core.topology import cluster_client, masters, node_client
from tests.system import replicas_match_masters, wait_for
from tests.traffic import Traffic

DEADLINE_MS = 8000
LATE_AFTER_S = 1.0  # a partial response that starts later than this after the kill fails


def _corpus_counts(settings):
    client = cluster_client(settings)
    try:
        partitions = int(client.hget(keys.CORPUS_META, "partitions"))
        tags = [partition_tag(p) for p in range(partitions)]
        passages = sum(client.scard(keys.passage_index(t)) for t in tags)
        tensors = 0
        for tag in tags:
            for pid in client.smembers(keys.passage_index(tag)):
                tensors += client.exists(keys.tensors(tag, pid.decode()))
        return passages, tensors
    finally:
        client.close()


def test_master_failover_under_traffic(system):
    before = _corpus_counts(system)
    wait_standbys_ready(system, timeout=300)
    victim = masters(system)[0]
    spec = next(s for s in localcluster.layout(system) if s.port == victim.port)
    pid = localcluster.node_pid(spec)
    assert pid

    def recovered():
        nodes = masters(system)
        if any(m.port == victim.port for m in nodes) or len(nodes) != 3:
            return False
        return all(is_ready(workers.state(system, m)) for m in nodes)

    with Traffic(system, lambda n: {"search": f"What do plates do? ({n})", "cache": False,
                                    "timeout_ms": DEADLINE_MS, "passages": True},
                 pause_s=0.05) as traffic:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(recovered, timeout=90, what="the replica to be promoted and served")
        full = wait_for(
            lambda: [o for o in traffic.outcomes if o.started > killed_at
                     and o.body.get("shards", {}).get("answered") == 3],
            timeout=60, what="a complete answer after the failover",
        )
        recovery = min(o.ended for o in full) - killed_at
    outcomes = traffic.outcomes
    print(f"\nfailover: {len(outcomes)} requests, recovered {recovery:.1f} s after SIGKILL")

    assert outcomes
    for sent in outcomes:
        assert sent.status == 200, sent
        assert sent.seconds < DEADLINE_MS / 1000 + 1  # nothing hangs past its deadline
        shards = sent.body["shards"]
        assert shards["answered"] + len(shards["failed"]) == shards["total"]
        for failure in shards["failed"]:
            assert failure["reason"] and failure["partitions"]
        if sent.started > killed_at + LATE_AFTER_S:
            assert not shards["failed"] and not shards["partitions"]["missing"], sent
    # the standby beside the victim's replica answered for it, and said so
    helped = [o for o in outcomes if o.started > killed_at and any(
        s["node"] == victim.address for s in o.body["shards"]["standby"])]
    assert helped, "no response was served by the victim's standby"
    replica = helped[0].body["shards"]["standby"][0]["replica"]
    assert replica in {f"{h}:{p}" for h, p in victim.replicas}
    for sent in helped:
        read_by_standby = {s["phase"] for s in sent.body["shards"]["standby"]}
        if "read" in read_by_standby:
            assert any(p["replica"] for p in sent.body["passages"]), sent
    promoted = next(m for m in masters(system) if m.ranges == victim.ranges)
    node = node_client(promoted.host, promoted.port, system)
    assert modelpkg.current_version(node, promoted.tag) is not None
    assert _corpus_counts(system) == before  # nothing lost

    # the promoted node answers key-miss GETs too (its config file enables the events)
    tag = next(t for t in (partition_tag(p) for p in owned_partitions(promoted.ranges, 64))
               if node.exists(keys.passage_index(t)))
    pid = node.srandmember(keys.passage_index(tag)).decode()
    key = keys.answer(tag, pid, "what happened after the failover?")
    assert node.get(key) is None
    assert wait_for(lambda: node.get(key), what="the key-miss answer on the promoted node")

    localcluster.up(system)  # the old master comes back as a replica (from its own AOF)
    wait_for(lambda: localcluster.status(system).state == "ok", what="cluster ok")
    returned = next(n for n in localcluster.status(system).nodes if n.port == victim.port)
    assert returned.role == "replica" and returned.replica_of == promoted.address
    # what arrived by replication is all there, on the new master and on the old one
    pairs = replicas_match_masters(system)
    assert all(a == b for a, b in pairs) and sum(a for a, _ in pairs) == before[0]
    # and its worker, which outlived the node, serves as its standby again
    standbys = wait_standbys_ready(system, timeout=300)
    assert standbys[victim.address]["standby"] is True
