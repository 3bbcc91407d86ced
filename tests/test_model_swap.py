"""A model swap that changes the embedder never leaves a node without its index.

A tiny package (another embedder, 64 dimensions instead of 384; see tests/tiny_models)
is pushed under a steady stream of queries: every worker builds the new index before
it swaps, so every response covers every partition, before, during and after the swap
and the rollback.
"""

from __future__ import annotations

from qasearch.core import modelpkg
from qasearch.core.topology import masters, node_client
from tests import tiny_models
from tests.system import serving, wait_for
from tests.traffic import Traffic


def test_an_embedder_swap_under_traffic_keeps_every_partition_answered(system):
    first = masters(system)[0]
    old = modelpkg.current_version(node_client(first.host, first.port, system), first.tag)
    tiny = tiny_models.tiny_package(seed=7, max_seq_len=384)  # room for the doc stride
    # paced: a swap back that re-embeds every passage loaded by earlier tests takes
    # minutes, and the stream must last through it
    with Traffic(system, lambda n: {"search": f"How do vaccines work? {n}", "cache": False,
                                    "timeout_ms": 30000}, pause_s=0.2) as traffic:
        traffic.more(2, "before the swap")
        modelpkg.push_to_cluster(system, tiny, progress=False)
        wait_for(lambda: serving(system, tiny.version), timeout=180,
                 what="every worker on the tiny embedder")
        wait_for(lambda: any(s.body.get("model", {}).get("version") == tiny.version
                             for s in traffic.outcomes),
                 timeout=120, what="the gateway embedding with the tiny embedder")
        traffic.more(2, "on the new model")
        for master in masters(system):
            node = node_client(master.host, master.port, system)
            modelpkg.rollback(node, master.tag)
            modelpkg.delete_version(node, master.tag, tiny.version)
        seen: dict[str, set] = {"lapsed": set(), "loading": set()}
        wait_for(lambda: serving(system, old, seen), timeout=300, what="every worker back")
        assert not seen["lapsed"], f"heartbeats lapsed during the swap back: {seen}"
        assert seen["loading"] == {old}, seen  # the heartbeat says what is being loaded
        traffic.more(2, "after the rollback")
    versions = set()
    for sent in traffic.outcomes:
        assert sent.status == 200, sent
        assert sent.body["shards"]["failed"] == [], sent
        assert sent.body["shards"]["partitions"]["missing"] == [], sent
        versions.add(sent.body["model"]["version"])
    assert {old, tiny.version} <= versions
