"""Answer keys, the key-miss trigger, single-flight, the response cache and worker stats."""

from __future__ import annotations

import json
import threading
import time

import pytest

from gears.stats import read_stats
from qasearch.core import keys, modelpkg
from qasearch.core.partitions import in_ranges, slot_of_tag
from qasearch.core.topology import cluster_client, masters, node_client
from tests.helpers import redis_cli
from tests.system import owner_of_doc, post, qasearch, wait_for

ODD_QUESTIONS = [
    "What_is the   under_score_question?",
    'Who said "hello" and \'bye\'?',
    "Qu'est-ce que l'été à Zürich — 東京?",
    "x" * 1000,
]


@pytest.mark.parametrize("question", ODD_QUESTIONS)
def test_answer_keys_parse_back_for_any_question(question):
    pid = keys.passage_id("doc_with_underscores and spaces", 3)
    key = keys.answer("p07", pid, question)
    assert keys.parse_answer(key) == ("p07", pid, question)
    assert keys.parse_answer(key.encode()) == keys.parse_answer(key)


def test_the_key_holds_the_question_as_asked():
    """Only the ends' whitespace goes (as the gateway strips it): case and inner spacing
    change what a cased or byte-level reader reads, so they stay in the key."""
    pid = keys.passage_id("d", 0)
    key = keys.answer("p01", pid, "  What IS  the\tAnswer? \n")
    assert keys.parse_answer(key) == ("p01", pid, "What IS  the\tAnswer?")
    assert key != keys.answer("p01", pid, "what is the answer?")
    assert key != keys.answer("p01", pid, "What IS the Answer?")
    assert keys.parse_answer("bertqa{p01}_nounderscore") is None
    assert keys.parse_answer("qa:passage{p01}:d:0") is None


def _node_of(settings, tag):
    return next(m for m in masters(settings) if in_ranges(slot_of_tag(tag), m.ranges))


def _redis_cli_get(settings, port, key):
    proc = redis_cli(settings, port, "GET", key)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _load_doc(system, tmp_path, doc_id, text):
    path = tmp_path / f"{doc_id}.jsonl"
    path.write_text(json.dumps({"id": doc_id, "title": "Cache test", "text": text}) + "\n")
    qasearch(system, "load", str(path), "--quiet")
    tag, owner = owner_of_doc(system, doc_id)
    node = node_client(owner.host, owner.port, system)
    pid = keys.passage_id(doc_id, 0)
    wait_for(lambda: node.exists(keys.tensors(tag, pid)), what="tensors")
    return tag, pid, owner


@pytest.mark.parametrize("question", ODD_QUESTIONS[:3] + ["Why_" + "long " * 190])
def test_a_get_of_a_missing_answer_key_makes_the_worker_answer_it(system, tmp_path, question):
    tag, pid, owner = _load_doc(system, tmp_path, "keymiss-doc",
                                "Copper conducts heat well, so pans often have copper bases.")
    key = keys.answer(tag, pid, question)
    some_other_node = next(m for m in masters(system) if m.address != owner.address)
    assert _redis_cli_get(system, some_other_node.port, key) == ""  # a miss, via redirect
    value = wait_for(lambda: node_client(owner.host, owner.port, system).get(key),
                     what="the answer written by the key-miss trigger")
    answer = json.loads(value)
    text = "Copper conducts heat well, so pans often have copper bases."
    assert text[answer["start"] : answer["end"]] == answer["answer"]
    assert answer["model"] == modelpkg.current_version(
        node_client(owner.host, owner.port, system), owner.tag
    )
    assert json.loads(_redis_cli_get(system, some_other_node.port, key)) == answer


def _total_stats(settings):
    total = {}
    for m in masters(settings):
        client = node_client(m.host, m.port, settings)
        version = modelpkg.current_version(client, m.tag)
        for name, value in read_stats(client, m.tag, version).items():
            total[name] = total.get(name, 0) + value
    return total


def _settled_stats(settings):
    time.sleep(2.5)  # workers flush their counters every second
    return _total_stats(settings)


def test_the_same_answer_is_never_computed_twice_at_once(system):
    question = "Which metal conducts heat in the bases of pans?"
    status, first = post(system, {"search": question, "num_results": 100, "top_k": 1})
    assert status == 200 and not first["cached"]
    answer_keys = sorted({r["answerkey"] for r in first["results"]})
    assert answer_keys
    client = cluster_client(system)
    for key in answer_keys:
        client.unlink(key)

    before = _settled_stats(system)
    barrier = threading.Barrier(len(answer_keys) + 3)
    errors = []

    def ask(n):
        barrier.wait()
        status, body = post(system, {"search": question, "num_results": 50 + n, "top_k": 1})
        if status != 200 or body["cached"]:
            errors.append(body)

    def get(key):
        barrier.wait()
        client.get(key)  # a key-miss trigger for the same answer

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=get, args=(k,)) for k in answer_keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    after = _settled_stats(system)
    # every request read the same passages; each (passage, question) was read once
    assert after["calls"] - before["calls"] == len(answer_keys)
    assert after["cache_hits"] + after["cache_misses"] > before["cache_hits"]


def test_repeated_request_is_served_from_the_response_cache_until_the_corpus_changes(
    system, tmp_path
):
    body = {"search": "How do tides rise and fall?", "num_results": 3}
    status, first = post(system, body)
    assert status == 200 and first["cached"] is False
    before = _settled_stats(system)
    status, second = post(system, body)
    assert status == 200 and second["cached"] is True
    assert second["results"] == first["results"]
    assert _settled_stats(system)["calls"] == before["calls"]  # the workers were not asked

    status, uncached = post(system, {**body, "cache": False})
    assert status == 200 and uncached["cached"] is False

    _load_doc(system, tmp_path, "cache-bump", "A new passage changes the corpus version.")
    status, third = post(system, body)
    assert status == 200 and third["cached"] is False


def test_a_changed_passage_never_serves_its_old_answer(system, tmp_path):
    tag, pid, owner = _load_doc(system, tmp_path, "changing-doc",
                                "The old text says the bridge is made of oak timber.")
    node = node_client(owner.host, owner.port, system)
    key = keys.answer(tag, pid, "What is the bridge made of?")
    node.get(key)
    old = json.loads(wait_for(lambda: node.get(key), what="first answer"))
    assert old["answer"] in "The old text says the bridge is made of oak timber."

    new_text = "Rebuilt in stone, the new bridge carries trains across the river gorge."
    path = tmp_path / "changed.jsonl"
    path.write_text(json.dumps({"id": "changing-doc", "title": "T", "text": new_text}) + "\n")
    qasearch(system, "load", str(path), "--quiet")
    wait_for(lambda: not node.exists(key), what="the stale answer to be dropped")
    node.get(key)
    fresh = json.loads(wait_for(lambda: node.get(key), what="the new answer"))
    assert new_text[fresh["start"] : fresh["end"]] == fresh["answer"]


def test_stats_are_readable_from_the_cli_and_from_redis(system):
    post(system, {"search": "What is photosynthesis?", "cache": False})
    out = qasearch(system, "stats", "--json")
    rows = json.loads(out[out.index("[") :])
    assert rows and all(r["calls"] >= 0 for r in rows)
    assert sum(r["calls"] for r in rows) > 0 and sum(r["batches"] for r in rows) > 0
    m = next(m for m in masters(system) if m.address == rows[0]["node"])
    raw = node_client(m.host, m.port, system).hgetall(rows[0]["key"])
    assert b"samples" in raw
