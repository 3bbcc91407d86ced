"""``qasearch eval`` through the real system: cluster, workers, gunicorn (tests/system.py).

The reader is the untrained offline MiniLM: scores are noise, so these tests check
mechanics -- the files and fields written, figures in range, and that reader-only
scoring predicts exactly what the gateway serves for the same question and passage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qasearch.bench.evaluation.open_domain import OpenEvalError, check_corpus
from qasearch.bench.evaluation.reader_eval import evaluate_package
from qasearch.bench.evaluation.squadfile import read_eval_questions
from qasearch.core import modelpkg
from qasearch.core.models import LoadedModel
from qasearch.core.settings import to_environ
from tests.system import post, qasearch, wait_for

PARAGRAPHS = [
    ("Zorvath Observatory", "The Zorvath Observatory stands on Mount Kelbrin. Its copper dome "
     "was raised in 1887 by the astronomer Ilsa Marchetti, who catalogued 412 comets there.",
     [("Who raised the copper dome of the Zorvath Observatory?", "Ilsa Marchetti"),
      ("How many comets were catalogued at the Zorvath Observatory?", "412")]),
    ("Quillon River", "The Quillon River drains the Tessaly marshes into the Varn Sea. Barges "
     "on the Quillon carried salt and amber until the Dunmore railway opened in 1903.",
     [("What did barges on the Quillon River carry?", "salt and amber"),
      ("When did the Dunmore railway open?", "1903")]),
]
IMPOSSIBLE = "Which emperor renamed the Quillon River?"


@pytest.fixture(scope="module")
def squad_file(system, tmp_path_factory):
    paragraphs = []
    for title, context, qas in PARAGRAPHS:
        items = [{"id": f"{title}-{i}", "question": q,
                  "answers": [{"text": a, "answer_start": context.index(a)}]}
                 for i, (q, a) in enumerate(qas)]
        if title == "Quillon River":
            items.append({"id": "impossible", "question": IMPOSSIBLE, "answers": [],
                          "is_impossible": True})
        paragraphs.append({"title": title, "paragraphs": [{"context": context, "qas": items}]})
    path = tmp_path_factory.mktemp("eval") / "tiny-eval-v2.json"
    path.write_text(json.dumps({"version": "v2.0", "data": paragraphs}))
    qasearch(system, "load", str(path), "--format", "squad", "--quiet")
    questions = read_eval_questions(path)

    def tokenised():
        try:
            return check_corpus(system, questions, str(path)) == len(PARAGRAPHS)
        except OpenEvalError:
            return False

    wait_for(tokenised, timeout=120, what="the eval paragraphs tokenised")
    return path


def test_reader_only_predicts_what_the_gateway_serves(system, squad_file):
    model = LoadedModel.from_package(modelpkg.load_current(system))
    scores = evaluate_package(model, squad_file, handle_impossible=False, progress=False,
                              settings=system)
    assert scores.questions == 5 and scores.unanswerable["questions"] == 1
    compared = 0
    for row in scores.predictions:
        # the best 50 passages read, all of them answered: the gold one is there if read
        status, body = post(system, {"search": row["question"], "cache": False, "top_k": 50,
                                     "num_results": 100, "passages": True})
        assert status == 200, body
        assert body["passages_read"] == len(body["passages"]) > 0
        if row["doc_id"] not in [p["doc_id"] for p in body["passages"]]:
            continue
        served = next(r for r in body["results"] if r["doc_id"] == row["doc_id"])
        assert served["answer"] == row["prediction"], (row, served)
        assert served["reader_score"] == pytest.approx(row["score"], rel=1e-3)
        assert served["null_score"] == pytest.approx(row["null_score"], rel=1e-3)
        compared += 1
    assert compared >= 3  # distinctive questions: their paragraph is read


def test_eval_command_writes_both_modes(system, squad_file, tmp_path):
    out = tmp_path / "eval-out"
    printed = qasearch(system, "eval", str(squad_file), "--output", str(out), "--quiet")
    assert "open domain: top-1" in printed and "reader only: EM" in printed
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert "Open domain" in report and "Reader only" in report and "untrained" in report
    assert results["questions"] == 5 and results["trained"] is False
    opened = results["open"]
    for part in ("top1", "top1_answerable", "top1_unanswerable"):
        assert 0.0 <= opened[part]["exact_match"] <= opened[part]["f1"] <= 100.0
    assert opened["top1_unanswerable"]["questions"] == 1
    assert 0.0 <= opened["gold_in_top5"] <= 1.0
    recall = [opened["recall_at"][k] for k in ("1", "5", "10", "20", "all")]
    assert recall == sorted(recall) and 0.0 <= recall[0] and recall[-1] <= 1.0
    assert opened["passages_read_mean"] > 0
    # recall of every retrieval ranking side by side, from phase 1's candidates
    table = opened["retrieval_recall"]
    assert {"dense", "lexical", "weighted 0.3", "rrf"} <= set(table)
    for ranking in table.values():
        at = [ranking[k] for k in ("1", "5", "10", "20")]
        assert at == sorted(at) and 0.0 <= at[0] and at[-1] <= 1.0
    assert "each retrieval ranking" in report and "| lexical |" in report
    # F1 of reading fewer passages, per answer weight; K=1 is always there
    assert "K=1" in opened["read_sweep"] and "1.0" in opened["read_sweep"]["K=1"]
    assert 0 < opened["latency"]["p50_ms"] <= opened["latency"]["p95_ms"]
    rows = results["rows"]["open"]
    assert [r["id"] for r in rows] == [r["id"] for r in results["rows"]["reader"]]
    for r in rows:
        assert r["gold_rank"] is None or 0 <= r["gold_rank"] < r["passages_read"]
        # v2.0 file: "no answer" responses predict "", and that is what is scored
        assert (r["prediction"] == "") == (bool(r["no_answer"]) or not r["top"])
        # the served rule: the best answer's margin against the served threshold
        if r["top"] and r["margin"] is not None:
            assert r["no_answer"] == (r["margin"] > r["no_answer_threshold"]), r
    # the threshold these responses would choose, beside the served one
    table = opened["no_answer"]
    assert table["at_served_threshold"]["threshold"] == rows[0]["no_answer_threshold"]
    assert table["at_threshold"]["all"]["f1"] >= table["at_served_threshold"]["all"]["f1"]
    assert "Open domain, saying \"no answer\" when" in report
    assert results["reader"]["handle_impossible"] is True
    assert results["reader"]["questions"] == 5


def test_eval_refuses_a_file_whose_paragraphs_are_not_loaded(system, tmp_path):
    path = tmp_path / "unloaded.json"
    path.write_text(json.dumps({"data": [{"title": "Never loaded", "paragraphs": [{
        "context": "Nothing here.", "qas": [{"id": "x", "question": "What is here?",
                                             "answers": [{"text": "Nothing"}]}]}]}]}))
    proc = subprocess.run([sys.executable, "-m", "qasearch", "eval", str(path), "--mode", "open"],
                          env={**os.environ, **to_environ(system), "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "qasearch load" in proc.stderr and "Traceback" not in proc.stderr
