"""Reader-only scoring: the worker's windows and decoding, on an eager model and a package.

A tiny random reader (tests/tiny_models.py): its answers mean nothing, so these
tests check mechanics -- the scorer's predictions are the Hugging Face pipeline's
for the same question and paragraph, eager and traced readers agree, scores are
the metric's -- never quality.
"""

from __future__ import annotations

import json
import random

import pytest

from qasearch.bench.evaluation import metric
from qasearch.bench.evaluation.reader_eval import evaluate_package, evaluate_reader
from qasearch.core import keys
from qasearch.core.models import LoadedModel
from tests import tiny_models
from tests.test_reader_parity import make_pairs

SEED = 5
MAX_SEQ_LEN, STRIDE = 128, 32


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory):
    """A v2.0-style file: 24 questions on 12 paragraphs (some needing several windows),
    a third unanswerable, answers cut from the paragraph."""
    rng = random.Random(SEED)
    pairs = make_pairs(SEED, 24)
    paragraphs = []
    for i in range(0, len(pairs), 2):
        context = pairs[i][1]
        words = context.split()
        qas = []
        for j, (question, _) in enumerate(pairs[i : i + 2]):
            qid = f"q{i + j}"
            if (i + j) % 3 == 2:
                qas.append({"id": qid, "question": question, "answers": [],
                            "is_impossible": True})
                continue
            start = rng.randrange(len(words))
            text = " ".join(words[start : start + rng.randint(1, 3)])
            qas.append({"id": qid, "question": question, "answers": [
                {"text": text, "answer_start": context.find(text)},
                {"text": words[start], "answer_start": context.find(words[start])},
            ]})
        paragraphs.append({"context": context, "qas": qas})
    path = tmp_path_factory.mktemp("squad") / "tiny-v2.json"
    path.write_text(json.dumps({"version": "v2.0",
                                "data": [{"title": "Tiny", "paragraphs": paragraphs}]}))
    return path


@pytest.fixture(scope="module")
def eager():
    return tiny_models.tiny_reader(SEED), tiny_models.minilm_tokenizer()


def _eval(model, tokenizer, path, **options):
    return evaluate_reader(model, tokenizer, path, max_seq_len=MAX_SEQ_LEN, doc_stride=STRIDE,
                           progress=False, **options)


@pytest.mark.parametrize("impossible", [True, False])
def test_predictions_are_the_pipelines(eager, squad_file, impossible):
    from transformers import pipeline

    model, tokenizer = eager
    scores = _eval(model, tokenizer, squad_file, handle_impossible=impossible, batch_size=5)
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device="cpu")
    assert scores.questions == 24 and len(scores.predictions) == 24
    for row in scores.predictions:
        q = next(p for p in json.loads(squad_file.read_text())["data"][0]["paragraphs"]
                 for x in p["qas"] if x["id"] == row["id"])
        # the worker reads the question in its answer-key form
        want = qa(question=keys.question_form(row["question"]), context=q["context"],
                  max_seq_len=MAX_SEQ_LEN, doc_stride=STRIDE, max_answer_len=15,
                  handle_impossible_answer=impossible)
        assert row["prediction"] == want["answer"], row
        if row["prediction"]:
            assert row["score"] == pytest.approx(want["score"], rel=1e-4, abs=1e-6)
        assert (row["exact_match"], row["f1"]) == metric.score(row["prediction"], row["answers"])
    if not impossible:  # without the null answer a span always wins
        assert all(row["prediction"] for row in scores.predictions)


def test_summary_counts_and_ranges(eager, squad_file):
    scores = _eval(*eager, squad_file)
    assert scores.handle_impossible is True  # the file has unanswerable questions
    assert scores.answerable["questions"] == 16 and scores.unanswerable["questions"] == 8
    for part in (scores.answerable, scores.unanswerable):
        assert 0.0 <= part["exact_match"] <= part["f1"] <= 100.0
    rows = scores.predictions
    assert scores.f1 == pytest.approx(100.0 * sum(r["f1"] for r in rows) / len(rows))
    # an unanswerable question scores exactly when the reader said "no answer"
    for row in rows:
        if row["impossible"]:
            assert row["exact_match"] == float(row["prediction"] == "")
    assert scores.max_seq_len == MAX_SEQ_LEN and scores.doc_stride == STRIDE
    limited = _eval(*eager, squad_file, limit=5)
    assert limited.questions == 5
    assert [r["prediction"] for r in limited.predictions] == [
        r["prediction"] for r in rows[:5]]
    assert json.loads(json.dumps(scores.to_dict()))["questions"] == 24


def test_traced_package_scores_as_the_eager_model(eager, squad_file):
    loaded = LoadedModel.from_package(tiny_models.tiny_package(SEED, MAX_SEQ_LEN))
    traced = evaluate_package(loaded, squad_file, doc_stride=STRIDE, progress=False)
    direct = _eval(*eager, squad_file)
    assert traced.max_seq_len == MAX_SEQ_LEN  # capped by the package, as the worker caps it
    assert [r["prediction"] for r in traced.predictions] == [
        r["prediction"] for r in direct.predictions]
    assert traced.f1 == pytest.approx(direct.f1)
