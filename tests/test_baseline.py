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
from qasearch.bench import baseline, report
from qasearch.bench.masters import documents
from qasearch.bench.per_k import summarise
from qasearch.bench.snapshot import StoredText
from qasearch.core.settings import Settings

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


def test_documents_rebuilt_from_stored_passages_split_into_the_same_passages():
    passages = _sample_passages(6)
    tokenizer = default_tokenizer()
    again = []
    for doc in documents(passages):
        again += [(doc.doc_id, p.text, p.char_start)
                  for p in split_document(doc.text, Settings().max_passage_tokens, tokenizer)]
    assert sorted(again) == sorted((p.doc_id, p.text, p.char_start) for p in passages)


def test_report_renders_the_baseline_and_master_sections(tmp_path):
    side = {"questions": 2, "p50_ms": 10.0, "p95_ms": 12.0, "mean_ms": 11.0,
            "questions_per_s": 90.0, "exact_match": 50.0, "f1": 60.0,
            "passages_read_mean": 3.0, "recall": 0.5, "partial": 0, "cached": 0}
    results = {
        "baseline": {"file": "q.json", "questions": 2, "passages": 9, "threads": 1,
                     "gold_known": 2,
                     "baseline": {"reader": {"note": "same weights"}, "embedder": "minilm",
                                  "index_seconds": 1.0},
                     "per_k": [{"k": 3, "questions": 2, "system": {**side, "partial": 1},
                                "baseline": {**side, "p50_ms": 20.0}, "system_failed": 0,
                                "latency_speedup": 2.0, "throughput_speedup": 1.5}]},
        "masters": {"stored_passages": 9, "documents": 3, "questions": 2,
                    "config": {"replicas": 0, "warmup": 2, "top_k": None},
                    "sizes": [{"masters": 3, "partitions": 24, "passages": 9,
                               "ready_s": 4.0, "latency": side, "failed": 0,
                               "p50_over_first": 1.0},
                              {"masters": 6, "error": "TimeoutError: slow"}]},
    }
    folder, _ = report.write(str(tmp_path), results, {})
    text = (folder / "report.md").read_text()
    assert "## d. The twenty-line alternative, per K" in text
    assert "| 3 | 2 | 10 ms | 12 ms | 90.00 | 60.0 | 50.0 | 3.0 | 20 ms |" in text
    assert "| 2.00x | 1.50x |" in text
    assert "**Partial system replies**" in text and "K=3: 1 of 2" in text
    assert "## e. Master counts" in text and "failed: TimeoutError: slow" in text
