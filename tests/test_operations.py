"""Operations under traffic: readiness, a killed worker, a broken model package."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request

from qasearch.cluster import workers
from qasearch.core import modelpkg
from qasearch.core.heartbeat import is_ready
from qasearch.core.topology import masters, node_client
from tests.system import post, qasearch, wait_for
from tests.traffic import Traffic


def _get(settings, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.api_port}{path}", timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _all_ready(settings):
    return all(is_ready(workers.state(settings, m)) for m in masters(settings))


def test_health_and_readiness(system):
    assert _get(system, "/healthz")[0] == 200
    wait_for(lambda: _get(system, "/readyz")[0] == 200, what="readiness")


def test_a_worker_killed_mid_traffic_is_restarted_and_no_request_is_lost(system):
    victim = masters(system)[0]
    old_pid = int(workers.state(system, victim)["pid"])
    outcomes: list[tuple[int, dict]] = []

    def ask(i):
        outcomes.append(post(system, {"search": f"question {i} about volcanoes and lava?",
                                      "cache": False, "timeout_ms": 20000}))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    os.kill(old_pid, signal.SIGKILL)
    for t in threads:
        t.join(60)
    assert len(outcomes) == 8  # none hangs
    for status, body in outcomes:
        assert status == 200, body
        shards = body["shards"]
        assert shards["answered"] + len(shards["failed"]) == shards["total"] == 3
        for failure in shards["failed"]:
            assert failure["reason"]
    new_state = wait_for(
        lambda: (s := workers.state(system, victim)) and is_ready(s)
        and int(s["pid"]) != old_pid and s,
        timeout=120, what="a restarted worker",
    )
    assert int(new_state["pid"]) != old_pid
    status, body = post(system, {"search": "What do volcanoes erupt?", "cache": False})
    assert status == 200 and body["shards"]["answered"] == 3


def test_a_broken_model_package_is_refused_and_the_running_model_keeps_serving(system):
    first = masters(system)[0]
    client = node_client(first.host, first.port, system)
    good = modelpkg.load(client, first.tag)
    m = good.manifest
    broken = modelpkg.make_package(
        name="broken", source="test", trained=False, reader=m["reader"], embedder=m["embedder"],
        reader_tokenizer=m["reader_tokenizer"], embedder_tokenizer=m["embedder_tokenizer"],
        blobs={"reader": b"this is not a TorchScript archive", "embedder": good.blobs["embedder"]},
    )
    modelpkg.push_to_cluster(system, broken, progress=False)
    try:
        for master in masters(system):
            wait_for(lambda m=master: workers.state(system, m).get("refused") == broken.version,
                     what=f"{master.address} to refuse the broken package")
            assert workers.state(system, master)["model"] == good.version
        status, body = post(system, {"search": "What is insulin?", "cache": False})
        assert status == 200 and body["shards"]["answered"] == 3
        assert body["model"]["version"] == good.version
    finally:
        for master in masters(system):
            node = node_client(master.host, master.port, system)
            modelpkg.rollback(node, master.tag)
            modelpkg.delete_version(node, master.tag, broken.version)
    assert modelpkg.current_version(client, first.tag) == good.version
    wait_for(lambda: _all_ready(system), what="all workers ready")


def test_model_push_and_rollback_under_traffic_fail_no_request(system):
    first = masters(system)[0]
    old = modelpkg.current_version(node_client(first.host, first.port, system), first.tag)

    def serving(version):
        return all((s := workers.state(system, m)).get("model") == version and is_ready(s)
                   for m in masters(system))

    with Traffic(system, lambda n: {"search": f"How does insulin work? {n}", "cache": False,
                                    "timeout_ms": 20000}) as traffic:
        qasearch(system, "model", "push", "--offline-minilm", "--quantize", "int8", "--quiet")
        new = modelpkg.current_version(node_client(first.host, first.port, system), first.tag)
        assert new != old
        wait_for(lambda: serving(new), timeout=120, what="every worker on the int8 reader")
        traffic.more(3, "on the new model", timeout=60)
        qasearch(system, "model", "rollback")
        wait_for(lambda: serving(old), timeout=120, what="every worker back on fp32")
    assert traffic.outcomes
    for sent in traffic.outcomes:
        assert sent.status == 200, sent
        assert sent.body["shards"]["failed"] == [], sent
    versions = {sent.body["model"]["version"] for sent in traffic.outcomes}
    assert new in versions and old in versions
