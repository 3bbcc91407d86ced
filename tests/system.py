"""A running system for tests: cluster, offline MiniLM model, sample corpus, workers, gunicorn.

Driven through the ``qasearch`` CLI as a user would. The reader is the offline
MiniLM package with an UNTRAINED QA head: tests on it check mechanics, never the
quality of the spans.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from qasearch.cluster import localcluster
from qasearch.cluster.workers import states as worker_states
from qasearch.core import heartbeat, keys, modelpkg
from qasearch.core.partitions import in_ranges, partition_for_doc, partition_tag, slot_of_tag
from qasearch.core.settings import to_environ
from qasearch.core.topology import cluster_client, masters, node_client
from tests.helpers import HOST, free_port

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample" / "corpus.jsonl"


def qasearch(settings, *args: str, timeout: float = 600) -> str:
    env = {**os.environ, **to_environ(settings), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "qasearch", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"qasearch {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def post(settings, body: bytes | dict, path: str = "/qasearch") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://{settings.api_host}:{settings.api_port}{path}", data=data,
        headers={"Content-Type": "application/json"}, method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def owner_of_doc(settings, doc_id: str):
    client = cluster_client(settings)
    try:
        partitions = int(client.hget(keys.CORPUS_META, "partitions"))
    finally:
        client.close()
    tag = partition_tag(partition_for_doc(doc_id, partitions))
    slot = slot_of_tag(tag)
    owner = next(m for m in masters(settings) if in_ranges(slot, m.ranges))
    return tag, owner


@pytest.fixture(scope="session")
def system(cluster, tmp_path_factory):
    settings = cluster.replace(api_port=free_port(), max_batch_wait_ms=2.0)
    qasearch(settings, "model", "push", "--offline-minilm")
    qasearch(settings, "load", str(SAMPLE), "--format", "jsonl", "--quiet")
    qasearch(settings, "workers", "start", "--wait", "300")
    qasearch(settings, "serve", "--detach", "--workers", "1")
    try:
        yield settings
    finally:
        teardown(settings, "serve", "--stop")
        teardown(settings, "workers", "stop")


def teardown(settings, *args: str) -> None:
    """``qasearch ARGS`` when a fixture ends: reports nothing, fails nothing."""
    subprocess.run([sys.executable, "-m", "qasearch", *args],
                   env={**os.environ, **to_environ(settings)}, check=False)


def wait_for(predicate, timeout: float = 60.0, what="condition"):
    """``predicate()``'s first true value within ``timeout``; else fail, saying ``what``
    (a string, or a callable that describes the state at the moment of failing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def replicas_match_masters(settings) -> list[tuple[int, int]]:
    """Wait until each replica holds as many passages as its master; (master's, replica's)."""
    def passages(port: int) -> int:
        client = node_client(HOST, port, settings, socket_timeout=30)
        try:
            return sum(1 for _ in client.scan_iter(match="qa:passage{*", count=1000))
        finally:
            client.close()

    status = localcluster.status(settings)
    by_address = {n.address: n.port for n in status.nodes}
    counts = []
    for m in status.masters:
        assert m.replicas, f"master {m.address} has no replica"
        for replica in m.replicas:
            ports = (by_address[m.address], by_address[replica])
            wait_for(lambda p=ports: passages(p[0]) == passages(p[1]), timeout=120,
                     what=lambda p=ports: f"replica {p[1]} to hold as many passages as "
                                          f"master {p[0]}: {passages(p[1])} vs {passages(p[0])}")
            counts.append((passages(ports[0]), passages(ports[1])))
    return counts


def serving(settings, version: str, seen: dict[str, set] | None = None) -> bool:
    """Every worker serves ``version`` and is ready; ``seen`` collects, while a swap goes
    on, the masters whose heartbeat lapsed and the versions named as loading."""
    found = worker_states(settings)
    if seen is not None:
        seen["lapsed"].update(s["master"] for s in found if "pid" not in s)
        seen["loading"].update(s["loading"] for s in found if s.get("loading"))
    return bool(found) and all(s.get("model") == version and heartbeat.is_ready(s) for s in found)


def roll_back_and_delete(settings, before: str, version: str, timeout: float) -> None:
    """``qasearch model rollback`` to ``before``, wait until it is served, then delete
    ``version`` from every master: a test that pushed a model leaves the system as it was."""
    qasearch(settings, "model", "rollback")
    wait_for(lambda: serving(settings, before), timeout=timeout, what="the rollback served")
    for master in masters(settings):
        client = node_client(master.host, master.port, settings)
        try:
            modelpkg.delete_version(client, master.tag, version)
        finally:
            client.close()
