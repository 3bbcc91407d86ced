"""Every common reader family served exactly as ``pipeline("question-answering")`` answers.

One real cluster (2 masters), real workers and a real gunicorn, with small windows
(``max_seq_len`` 96, stride 32: sample passages need several), a small
``max_answer_len`` and ``handle_impossible_answer``. Each family's tiny checkpoint
(:mod:`tests.families`) is pushed with ``qasearch model push DIR`` and asked
questions with capitals and odd spacing; every answer served is compared with the
pipeline's best answer for the same question and passage on all three paths:

1. ``POST /qasearch`` (each result),
2. the answer cache: a GET of the result's ``answerkey``,
3. the key-miss trigger: a GET of the key of another spelling of the question,
   which the worker computes from the key alone.

A passage whose best answer is "no answer" (the null score wins) is cached as
``""`` and must be ``""`` for the pipeline too. The models are random: only
mechanics are compared, the answers mean nothing.
"""

from __future__ import annotations

import json

import pytest

from qasearch.core import keys
from qasearch.core.topology import cluster_client
from tests import families, tiny_models
from tests.conftest import start_cluster
from tests.helpers import free_port
from tests.system import SAMPLE, post, qasearch, teardown, wait_for

SCORE_TOL = 1e-4
WINDOW = {"max_seq_len": 96, "doc_stride": 32, "max_answer_len": 4,
          "handle_impossible_answer": True}
QUESTIONS = ["Who developed the first Vaccine?", "How do  Tides RISE and fall?"]
KEYMISS_QUESTION = "WHERE does the Water go? It's 3,000 km-long."
EXTRA_DOC = {"id": "punct", "title": "Punctuation", "text": (
    "Hail fell on the Zürich-Basel line; 3,000 islands (e.g. Åland's) reported hail. "
    "The U.S.A. census of 1,000,000 people, don't you know, took 10km of paper.")}
PAIRS: dict[str, list[int]] = {}  # family -> [identical, compared], for the report


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Settings of a running system on a cluster of its own, and the embedder folder."""
    root = tmp_path_factory.mktemp("families")
    cluster = start_cluster(root, masters=2, replicas=0)
    settings = cluster.replace(api_port=free_port(), top_k=2, **WINDOW)
    embedder = root / "embedder"
    tiny_models.tiny_embedder(seed=5).save_pretrained(embedder)
    tiny_models.minilm_tokenizer().save_pretrained(embedder)
    first, _, _ = families.build("bert-uncased", root / "first")
    qasearch(settings, "model", "push", str(first), "--embedder", str(embedder), "--quiet")
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:6]] + [EXTRA_DOC]
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qasearch(settings, "load", str(corpus), "--format", "jsonl", "--quiet")
    qasearch(settings, "workers", "start", "--wait", "300")
    qasearch(settings, "serve", "--detach", "--workers", "1")
    try:
        yield settings, embedder, root
    finally:
        teardown(settings, "serve", "--stop")
        teardown(settings, "workers", "stop")
        from qasearch.cluster import localcluster

        localcluster.down(cluster, purge=True)
        print("\nparity through the gateway (identical / pairs):")
        for family, (same, total) in PAIRS.items():
            print(f"  {family:20s} {same} / {total}")


def _push(settings, folder, embedder) -> str:
    out = qasearch(settings, "model", "push", str(folder), "--embedder", str(embedder),
                   "--quiet")
    assert "loss_type" not in out and "ForCausalLMLoss" not in out, out
    return out.split()[1]  # "model <version> ..."


def _in_service(settings, version: str):
    status, body = post(settings, {"search": "warm up", "cache": False, "num_results": 1})
    if status != 200 or body["model"]["version"] != version or body["model"].get(
            "shard_versions") or body["shards"]["failed"]:
        return None
    return body


def _pipeline_best(qa, question: str, context: str) -> dict:
    best = qa(question=question, context=context, top_k=1, **WINDOW)
    return best[0] if isinstance(best, list) else best


def _same(served: dict, want: dict) -> bool:
    if want["answer"] == "":  # the null score won: the system has no answer here
        return served["answer"] == ""
    return (served["answer"], served["start"], served["end"]) == (
        want["answer"], want["start"], want["end"]) and abs(
        served["score"] - want["score"]) < SCORE_TOL


@pytest.mark.parametrize("family", sorted(families.FAMILIES))
def test_served_answers_equal_the_pipeline(served, family):
    from transformers import pipeline

    settings, embedder, root = served
    folder, model, tokenizer = families.build(family, root / family)
    version = _push(settings, folder, embedder)
    wait_for(lambda: _in_service(settings, version), timeout=180,
             what=f"{family} model {version} in service on every shard")
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    client = cluster_client(settings)
    mismatches, compared = [], 0
    for question in QUESTIONS:
        status, body = post(settings, {"search": question, "num_results": 6, "top_k": 3})
        assert status == 200 and body["results"], body
        for r in body["results"]:
            want = _pipeline_best(qa, question.strip(), r["sentence"])
            cached = json.loads(client.get(r["answerkey"]))
            tag, pid, in_key = keys.parse_answer(r["answerkey"])
            assert in_key == question.strip()  # case and inner spacing kept
            other = keys.answer(tag, pid, KEYMISS_QUESTION)
            gets = wait_for(lambda k=other: client.get(k), what="the key-miss trigger's answer")
            keymiss = json.loads(gets)
            keymiss_want = _pipeline_best(qa, KEYMISS_QUESTION, r["sentence"])
            served = {**r, "score": r["reader_score"]}  # the span's score, not the blend
            for path, got, expected in (("/qasearch", served, want), ("answer cache", cached, want),
                                        ("key-miss", keymiss, keymiss_want)):
                compared += 1
                if not _same(got, expected):
                    mismatches.append((path, r["sentencekey"], got, expected))
    PAIRS[family] = [compared - len(mismatches), compared]
    assert not mismatches, f"{family}: {len(mismatches)} of {compared} differ: {mismatches[:3]}"
    assert compared >= 18
