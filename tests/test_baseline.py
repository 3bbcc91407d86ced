"""The twenty-line baseline of ``qasearch bench`` (section d) and the corpus rebuild of
section e, on real parts: the offline MiniLM reader rebuilt and digest-checked, the
package's MiniLM in sentence-transformers, a spawned process. No figure is asserted as a
speed; only that the numbers are there and sane.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loaders import model_push
from loaders.splitter import default_tokenizer, split_document
from qasearch.benchmark import baseline
from qasearch.benchmark.per_k import summarise
from qasearch.benchmark.snapshot import StoredText
from qasearch.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def _sample_passages(docs: int) -> list[StoredText]:
    tokenizer = default_tokenizer()
    found = []
    for line in (SAMPLE / "corpus.jsonl").read_text().splitlines()[:docs]:
        doc = json.loads(line)
        for p in split_document(doc["text"], Settings().max_passage_tokens, tokenizer):
            found.append(StoredText(f"{doc['id']}:{p.chunk}", doc["id"], doc["title"], "",
                                    p.text, p.char_start))
    return found


def _questions(passages: list[StoredText], count: int) -> list[baseline.Question]:
    data = json.loads((SAMPLE / "questions.json").read_text())
    titles = {p.title for p in passages}
    found = []
    for article in data["data"]:
        if article["title"] not in titles:
            continue
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                gold = baseline.gold_passages("not-loaded", paragraph["context"], passages)
                found.append(baseline.Question(qa["question"],
                                               tuple(a["text"] for a in qa["answers"]), gold))
    return found[:count]


@pytest.fixture(scope="module")
def manifest() -> dict:
    """The offline MiniLM package's manifest, built as `qasearch model push` builds it."""
    package, _ = model_push.prepare(None, offline_minilm=True)
    return package.manifest


def test_baseline_runs_in_its_own_process_and_reports_every_k(manifest):
    passages = _sample_passages(3)
    questions = _questions(passages, 4)
    assert len(passages) >= 8 and len(questions) == 4
    assert all(q.gold for q in questions)  # each sample context is one passage
    ks = (1, 2, 4)
    job = baseline.BaselineJob(passages=passages, questions=questions, ks=ks,
                               manifest=manifest, settings=Settings(), threads=1,
                               seconds_per_k=60.0, limits={4: 3})
    found = baseline.run(job)

    assert found["reader"]["weights_identical"] is True
    assert found["passages"] == len(passages) and found["threads"] == 1
    assert found["index_seconds"] > 0
    assert [k["k"] for k in found["per_k"]] == list(ks)
    recalls = []
    for per_k in found["per_k"]:
        rows = per_k["rows"]
        assert [r["index"] for r in rows] == list(range(3 if per_k["k"] == 4 else 4))
        assert all(r["read"] == per_k["k"] and r["ms"] > 0 for r in rows)
        figures = summarise(rows)
        assert figures["p50_ms"] > 0 and figures["p95_ms"] >= figures["p50_ms"]
        assert figures["questions_per_s"] > 0
        assert 0 <= figures["f1"] <= 100 and 0 <= figures["exact_match"] <= figures["f1"]
        recalls.append(summarise(rows, set(range(3)))["recall"])
    assert all(0 <= r <= 1 for r in recalls)
    assert recalls == sorted(recalls)  # recall@K never falls as K grows


def test_baseline_failure_is_reported_not_hung():
    job = baseline.BaselineJob(passages=_sample_passages(1),
                               questions=[baseline.Question("Who?", ("x",))], ks=(1,),
                               manifest={"source": "no-such-reader", "reader": {}},
                               settings=Settings(), threads=1)
    with pytest.raises(baseline.BaselineFailed, match="not a folder here"):
        baseline.run(job)
