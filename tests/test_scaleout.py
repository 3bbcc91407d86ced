"""Scale-out under traffic: `qasearch cluster add-node` on a running 3-master system.

A cluster of its own (the test changes the topology): the offline MiniLM package
(untrained QA head: mechanics only), the sample corpus, workers and gunicorn, all
through the CLI. Every response while the partitions move must cover every
partition exactly once, and afterwards four masters own six partitions each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from qasearch.cluster import localcluster, scaleout, workers
from qasearch.core import keys
from qasearch.core.heartbeat import is_ready
from qasearch.core.partitions import (
    balanced_slot_ranges,
    owned_partitions,
    partition_slot_ranges,
    partition_tag,
)
from qasearch.core.settings import to_environ
from qasearch.core.topology import Master, cluster_client, masters
from tests.conftest import start_cluster
from tests.helpers import free_port
from tests.system import SAMPLE, post, qasearch, wait_for
from tests.traffic import Traffic

PARTITIONS = 24  # 3 masters x 8 at load time


def _readyz(settings) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.api_port}/readyz",
                                    timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_plan_keeps_every_node_tag_and_deals_partitions_evenly():
    for before, ppm in ((3, 8), (4, 8), (2, 6)):
        current = [Master("127.0.0.1", 7000 + i, f"id{i}", (r,))
                   for i, r in enumerate(balanced_slot_ranges(before, ppm))]
        layout = scaleout.plan(current, before * ppm)
        assert sorted(layout.ranges.values()) == partition_slot_ranges(before + 1, before * ppm)
        for m in current:
            assert layout.tags[m.node_id] == m.tag  # request stream, model, heartbeat stay
        counts = [len(owned_partitions([r], before * ppm)) for r in layout.ranges.values()]
        assert max(counts) - min(counts) <= 1 and sum(counts) == before * ppm
    assert partition_slot_ranges(3, 24) == balanced_slot_ranges(3, 8)


def test_add_node_under_traffic_keeps_every_response_complete(tmp_path):
    settings = start_cluster(tmp_path).replace(api_port=free_port())
    env = {**os.environ, **to_environ(settings)}
    try:
        qasearch(settings, "model", "push", "--offline-minilm", "--quiet")
        qasearch(settings, "load", str(SAMPLE), "--format", "jsonl", "--quiet")
        qasearch(settings, "workers", "start", "--wait", "300")
        qasearch(settings, "serve", "--detach", "--workers", "1")
        with Traffic(settings, lambda n: {"search": f"What causes the tides? {n}",
                                          "cache": False, "top_k": 1,
                                          "timeout_ms": 60000}) as traffic:
            traffic.more(2, "before the move")
            out = qasearch(settings, "cluster", "add-node", "--json", timeout=900)
            during = len(traffic)
            traffic.more(3, "after the move")
        result, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])
        assert result["partitions_moved"] > 0 and result["waited_for_workers"]
        assert sorted(result["partitions_per_master"].values()) == [6, 6, 6, 6]

        outcomes = traffic.outcomes
        assert len(outcomes) > 5
        for i, sent in enumerate(outcomes):
            status, body = sent.status, sent.body
            where = f"response {i} of {len(outcomes)} ({during} before add-node returned)"
            assert status == 200, (where, body)
            assert body["shards"]["failed"] == [], (where, body["shards"])
            cover = body["shards"]["partitions"]
            assert cover == {"total": PARTITIONS, "answered": PARTITIONS, "missing": []}, (
                where, body["shards"])
            assert len({a["answerkey"] for a in body["results"]}) == len(body["results"])

        found = masters(settings)
        assert len(found) == 4
        client = cluster_client(settings)
        try:  # a partition no document hashed to has no index set and no worker index
            loaded = {partition_tag(p) for p in range(PARTITIONS)
                      if client.exists(keys.passage_index(partition_tag(p)))}
        finally:
            client.close()
        for master in found:
            owned = [partition_tag(p) for p in owned_partitions(master.ranges, PARTITIONS)]
            assert len(owned) == 6
            owned = [t for t in owned if t in loaded]
            state = wait_for(lambda m=master, o=owned: (s := workers.state(settings, m))
                             and is_ready(s) and s["partitions"].split(",") == o
                             and not s.get("warm") and s,
                             timeout=120, what=f"worker of {master.address} on its partitions")
            assert int(state["passages"]) > 0
        wait_for(lambda: _readyz(settings) == 200, timeout=120, what="readyz 200")
        status, body = post(settings, {"search": "What causes the tides?", "cache": False})
        assert status == 200 and body["shards"]["total"] == 4
        assert body["shards"]["partitions"]["missing"] == []

        # the added nodes are part of the layout: status sees them, a restart keeps them
        view = localcluster.status(settings)
        assert len(view.nodes) == 8 and len(view.masters) == 4
        localcluster.down(settings)  # data kept
        again = localcluster.up(settings, timeout=60)
        assert not again.created and len(again.started) == 8
        assert len(again.status.masters) == 4
        assert sorted(scaleout.share(again.status).values()) == [6, 6, 6, 6]
    finally:
        for args in (("serve", "--stop"), ("workers", "stop")):
            subprocess.run([sys.executable, "-m", "qasearch", *args], env=env, check=False,
                           capture_output=True, timeout=120)
        localcluster.down(settings, purge=True)
