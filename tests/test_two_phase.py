"""The two phases on the running system: a global top-K of candidates, then reading them.

Real cluster (3 masters), real workers, real gunicorn (tests/system.py). The reader is
the untrained offline MiniLM: these tests check which passages are found and read,
never the quality of the spans.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from api.fanout import Fanout
from api.search import TwoPhaseSearch
from qasearch.cluster.workers import wait_standbys_ready
from qasearch.core import keys, modelpkg
from qasearch.core.models import LoadedModel
from qasearch.core.topology import cluster_client, node_client
from tests.system import owner_of_doc, post, qasearch, wait_for

RARE = "zorblaxite"  # a word no other passage of the sample holds


def _load(system, tmp_path, docs: list[dict], name: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    qasearch(system, "load", str(path), "--format", "jsonl", "--quiet")


def _tokenised(system, doc_id: str) -> bool:
    tag, owner = owner_of_doc(system, doc_id)
    node = node_client(owner.host, owner.port, system)
    try:
        return bool(node.exists(keys.tensors(tag, keys.passage_id(doc_id, 0))))
    finally:
        node.close()


def _docs_on_every_master(system, count: int) -> list[str]:
    """Document ids whose partitions live on ``count`` different masters."""
    found: dict[str, str] = {}
    for i in range(500):
        doc_id = f"twophase-{i}"
        _, owner = owner_of_doc(system, doc_id)
        found.setdefault(owner.address, doc_id)
        if len(found) == count:
            return list(found.values())
    raise AssertionError("could not place documents on every master")


@pytest.fixture(scope="module")
def spread(system, tmp_path_factory):
    """Three passages about the same rare mineral, each on another master."""
    doc_ids = _docs_on_every_master(system, 3)
    places = ["the Kelvar basin", "the Ostrava highlands", "the Miren coast"]
    docs = [{"id": d, "title": f"{RARE.capitalize()} in {place}",
             "text": f"{RARE.capitalize()} is mined in {place}. The {RARE} ore of {place} is "
                     f"blue and is shipped to smelters by rail."}
            for d, place in zip(doc_ids, places)]
    _load(system, tmp_path_factory.mktemp("spread"), docs, "spread")
    for d in doc_ids:
        wait_for(lambda d=d: _tokenised(system, d), timeout=120, what=f"{d} tokenised")
    return doc_ids


def test_the_best_passages_of_every_master_are_read_in_one_global_top_k(system, spread):
    def all_found():
        status, body = post(system, {"search": f"Where is {RARE} mined?", "top_k": 3,
                                     "cache": False, "num_results": 10, "passages": True})
        assert status == 200, body
        return body if {p["doc_id"] for p in body["passages"]} == set(spread) else None

    body = wait_for(all_found, timeout=30, what="the three passages read")
    assert body["passages_read"] == 3 and len(body["passages"]) == 3
    owners = {owner_of_doc(system, d)[1].address for d in spread}
    assert len(owners) == 3  # each read on its own master
    assert {r["doc_id"] for r in body["results"]} == set(spread)  # an answer from each
    for r in body["results"]:
        assert r["lexical"] is not None and r["lexical"] > 0  # BM25 found the rare word
        assert 0.0 <= r["retrieval_score"] <= 1.0 and 0.0 <= r["reader_score"] <= 1.0
        assert r["score"] == pytest.approx(0.5 * r["retrieval_score"] + 0.5 * r["reader_score"])
    assert body["shards"]["partitions"]["missing"] == []
    # phase 1's candidates are listed best first, the three read among them
    retrieved = body["retrieved"]
    assert [c["retrieval"] for c in retrieved] == sorted((c["retrieval"] for c in retrieved),
                                                         reverse=True)
    assert {keys.doc_of_passage(c["pid"]) for c in retrieved[:3]} == set(spread)


@pytest.mark.parametrize("top_k", [1, 4, 30])
def test_top_k_bounds_the_passages_read_whatever_the_partition_count(system, top_k):
    status, body = post(system, {"search": "How do vaccines train the immune system?",
                                 "top_k": top_k, "cache": False, "passages": True,
                                 "num_results": 100})
    assert status == 200, body
    assert body["shards"]["partitions"]["total"] == 24  # 3 masters x 8 partitions
    assert body["passages_read"] == top_k == len(body["passages"])
    assert len(body["results"]) <= top_k
    # the passages read are the best top_k of the candidates, not top_k per partition
    best = body["retrieved"][:top_k]
    assert [p["sentencekey"] for p in body["passages"]] == [
        keys.passage(c["partition"], c["pid"]) for c in best]


def test_a_passage_loaded_changed_and_removed_follows_in_the_lexical_index(system, tmp_path):
    doc_id = "twophase-lexical"
    tag, owner = owner_of_doc(system, doc_id)
    pid = keys.passage_id(doc_id, 0)

    def lexical_hit(word: str) -> dict | None:
        status, body = post(system, {"search": word, "top_k": 1, "cache": False,
                                     "passages": True})
        assert status == 200, body
        return next((c for c in body["retrieved"] if c["pid"] == pid and c["partition"] == tag
                     and c["lexical"] is not None), None)

    _load(system, tmp_path, [{"id": doc_id, "title": "Glass",
                              "text": "The quintrevel furnace melts glass at dawn."}], "v1")
    wait_for(lambda: lexical_hit("quintrevel"), timeout=60, what="the new word in BM25")
    _load(system, tmp_path, [{"id": doc_id, "title": "Glass",
                              "text": "The ambrosquel furnace melts glass at dusk."}], "v2")
    wait_for(lambda: lexical_hit("ambrosquel"), timeout=60, what="the changed word in BM25")
    assert lexical_hit("quintrevel") is None  # the old text is gone from the index
    _load(system, tmp_path, [{"id": doc_id, "title": "Glass", "text": ""}], "v3")
    wait_for(lambda: lexical_hit("ambrosquel") is None, timeout=60, what="removal from BM25")
    node = node_client(owner.host, owner.port, system)
    try:
        assert not node.exists(keys.passage(tag, pid))
    finally:
        node.close()


class _StopBetweenPhases(TwoPhaseSearch):
    """Stops (SIGSTOP) the worker of the node holding the best candidate right after
    phase 1 answered, as a node that dies between the phases."""

    stopped: int = 0

    def _read(self, question, chosen, use_cache, deadline):
        node = chosen[0]["reply"].master
        client = node_client(node.host, node.port, self.settings)
        try:
            self.stopped = int(client.hget(keys.worker_state(node.tag), "pid"))
        finally:
            client.close()
        os.kill(self.stopped, signal.SIGSTOP)
        self.victim = node
        return super()._read(question, chosen, use_cache, deadline)


def _lose_a_node_between_the_phases(settings, deadline_s: float = 3.0):
    model = LoadedModel.from_package(modelpkg.load_current(settings))
    client = cluster_client(settings)
    partitions = int(client.hget(keys.CORPUS_META, "partitions"))
    client.close()
    search = _StopBetweenPhases(settings, Fanout(settings))
    question = f"Where is {RARE} mined?"
    started = time.monotonic()
    try:
        found = search.run(question, model.embed([question])[0], model.embedder_id, top_k=3,
                           use_cache=False, partitions=partitions,
                           deadline=started + deadline_s)
    finally:
        if search.stopped:
            os.kill(search.stopped, signal.SIGCONT)
    took = time.monotonic() - started
    assert took < deadline_s + 2.0, took  # the deadline holds: no hang on the stopped node
    return search, found


def test_a_node_lost_between_the_phases_ends_as_a_partial_response(system, spread):
    # no standby is asked (standby_after_ms 0: only a master that cannot be reached
    # is, and this one's Redis still answers): the node's passages are missing
    search, found = _lose_a_node_between_the_phases(system.replace(standby_after_ms=0))
    failed = [f for f in found.failed if f["node"] == search.victim.address]
    assert failed and failed[0]["phase"] == "read", found.failed
    assert "deadline" in failed[0]["reason"]
    assert failed[0]["partitions"] and set(failed[0]["partitions"]) <= set(found.missing)
    # the passages of the other nodes were read
    read_nodes = {owner_of_doc(system, p["doc_id"])[1].address for p in found.read}
    assert search.victim.address not in read_nodes and read_nodes


def test_a_node_lost_between_the_phases_is_read_by_its_standby(system, spread):
    wait_standbys_ready(system, timeout=300)
    # the stopped worker still holds the request (Redis handed it to its blocked read),
    # so the standby is asked once its heartbeat is stale (2.5 s): a longer deadline
    search, found = _lose_a_node_between_the_phases(system, deadline_s=8.0)
    assert not found.failed and not found.missing, found.failed
    helped = [s for s in found.standby if s["node"] == search.victim.address]
    assert helped and helped[0]["phase"] == "read", found.standby
    assert helped[0]["replica"] in {f"{h}:{p}" for h, p in search.victim.replicas}
    by_standby = [p for p in found.read if p["replica"]]
    assert by_standby and all(
        owner_of_doc(system, p["doc_id"])[1].address == search.victim.address
        for p in by_standby)
