"""The whole path on real parts: cluster, model push, load, workers, gunicorn, HTTP.

Everything is driven through the ``qasearch`` CLI as a user would, against a real
Redis Cluster (the session ``cluster`` fixture), real worker processes under their
supervisor, and a real gunicorn on a free loopback port. The reader is the offline
MiniLM package with an untrained QA head: these tests check mechanics (where data
lives, offsets, fan-out, ranking, errors), never the quality of the spans.
"""

from __future__ import annotations

import json

import pytest

from loaders.splitter import default_tokenizer
from qasearch.core import codec, keys
from qasearch.core.topology import node_client
from tests.system import owner_of_doc, post, qasearch, wait_for


def test_written_passage_is_tokenised_on_its_node_and_answered(system, tmp_path):
    text = (
        "The Lindqvist lighthouse keeper logged every storm in a green ledger. "
        "Its lamp burned whale oil until 1902, when kerosene replaced it."
    )
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(json.dumps({"id": "e2e-lighthouse", "title": "Lindqvist", "text": text}))
    qasearch(system, "load", str(corpus), "--format", "jsonl", "--quiet")

    tag, owner = owner_of_doc(system, "e2e-lighthouse")
    pid = keys.passage_id("e2e-lighthouse", 0)
    node = node_client(owner.host, owner.port, system)
    fields = wait_for(
        lambda: node.hgetall(keys.tensors(tag, pid)), what="tensors on the owning node"
    )
    ids, offsets = codec.decode(fields[b"ids"]), codec.decode(fields[b"offsets"])
    expected = default_tokenizer().encode(text, add_special_tokens=False)  # the reader's vocab
    assert ids.tolist() == expected.ids
    assert offsets.tolist() == [list(o) for o in expected.offsets]
    assert codec.decode(fields[b"emb"]).shape == (384,)

    status, body = post(system, {"search": "What did the lighthouse lamp burn before kerosene?",
                                 "num_results": 100, "top_k": 1})
    assert status == 200, body
    keys_found = [r["sentencekey"] for r in body["results"]]
    assert keys.passage(tag, pid) in keys_found
    hit = body["results"][keys_found.index(keys.passage(tag, pid))]
    assert hit["sentence"] == text and hit["doc_id"] == "e2e-lighthouse"
    assert hit["title"] == "Lindqvist"


def test_every_answer_is_its_passage_slice_and_the_head_is_flagged_untrained(system):
    status, body = post(system, {"search": "How do vaccines train the immune system?",
                                 "num_results": 8})
    assert status == 200, body
    assert body["results"], body
    assert body["model"]["trained"] is False and "untrained" in body["warning"]
    assert body["shards"] == {"total": 3, "answered": 3, "failed": [], "standby": [],
                              "partitions": {"total": 24, "answered": 24, "missing": []}}
    assert body["took_ms"] > 0
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    for r in body["results"]:
        assert r["sentence"][r["start"] : r["end"]] == r["answer"]
        assert r["answer"].strip()
        for field in ("sentencekey", "title", "doc_id"):
            assert isinstance(r[field], str)


def test_one_question_gets_answers_from_every_master(system, tmp_path):
    owners: dict[str, str] = {}
    k = 0
    while len(owners) < 3:
        doc_id = f"e2e-harmonica-{k}"
        k += 1
        _, owner = owner_of_doc(system, doc_id)
        owners.setdefault(owner.address, doc_id)
    texts = [
        "The glass harmonica was invented by Benjamin Franklin in 1761 using spinning bowls.",
        "Benjamin Franklin built his glass harmonica from nested glass bowls on an iron rod.",
        "Players of the glass harmonica, Franklin's 1761 invention, wet their fingers first.",
    ]
    corpus = tmp_path / "harmonica.jsonl"
    corpus.write_text("".join(
        json.dumps({"id": doc_id, "title": "Glass harmonica", "text": text}) + "\n"
        for doc_id, text in zip(owners.values(), texts)
    ))
    qasearch(system, "load", str(corpus), "--format", "jsonl", "--quiet")
    wanted = {}
    for address, doc_id in owners.items():
        tag, owner = owner_of_doc(system, doc_id)
        assert owner.address == address
        wanted[keys.passage(tag, keys.passage_id(doc_id, 0))] = address
        node = node_client(owner.host, owner.port, system)
        wait_for(lambda n=node, t=tag, d=doc_id: n.exists(keys.tensors(t, keys.passage_id(d, 0))),
                  what=f"tensors of {doc_id}")

    # the three passages are the corpus's best three: a global top 3 reads them all
    status, body = post(system, {"search": "Who invented the glass harmonica?",
                                 "num_results": 100, "top_k": 3})
    assert status == 200, body
    found = {r["sentencekey"] for r in body["results"]}
    assert set(wanted) <= found, (wanted, found)
    assert len(set(wanted.values())) == 3
    assert body["shards"]["answered"] == 3


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not valid JSON"),
        (b'{"num_results": 3}', '"search" is required'),
        (b'{"search": ""}', "must not be empty"),
        (b'{"search": "why?", "num_results": 0}', "num_results"),
        (b'{"search": "why?", "num_results": 100000}', "num_results"),
        (b'{"search": "why?", "num_results": "five"}', "num_results"),
    ],
)
def test_bad_requests_get_400_with_a_json_error(system, body, fragment):
    status, reply = post(system, body)
    assert status == 400
    assert fragment in reply["error"]


def test_unknown_route_is_a_json_404(system):
    status, reply = post(system, {"search": "x"}, path="/nowhere")
    assert status == 404 and "error" in reply


def test_bench_reports_latency_and_the_answer_cache(system, tmp_path):
    out = tmp_path / "bench.json"
    text = qasearch(system, "bench", "--queries", "3", "--redis-requests", "2000",
                    "--concurrency", "2", "--level-queries", "2", "--skip-floor",
                    "--skip-pipeline", "--eval-limit", "0", "--skip-baseline",
                    "--output", str(out))
    assert "redis-benchmark -h 127.0.0.1" in text and "cached /qasearch p50" in text
    figures = json.loads(out.read_text())
    assert figures["latency_c1"]["queries"] == 3 and figures["latency_c1"]["errors"] == 0
    cache = figures["answer_cache"]
    assert cache["answer_key_rps"] > 0 and cache["plain_get_rps"] > 0
    assert cache["answer_key"].startswith("bertqa{")
