"""The SQuAD metric against hand-computed values, and refusals of files it cannot score."""

from __future__ import annotations

import json

import pytest

from qasearch.bench.evaluation import metric
from qasearch.bench.evaluation.squadfile import EvalFileError, read_eval_questions


@pytest.mark.parametrize("text, normalised", [
    ("The  Eiffel-Tower!", "eiffeltower"),  # punctuation goes without leaving a space
    ("an apple a day", "apple day"),
    ("Anne and Theo", "anne and theo"),  # articles only as whole words
    ("  U.S.A.,\t1,000 ", "usa 1000"),
    ("The", ""),
])
def test_normalisation(text, normalised):
    assert metric.normalize_answer(text) == normalised


@pytest.mark.parametrize("prediction, answers, em, f1", [
    ("the Eiffel Tower.", ["Eiffel Tower"], 1.0, 1.0),
    # 2 of 4 predicted tokens right, both gold tokens found: P 1/2, R 1
    ("Edward Jenner in 1796", ["Edward Jenner"], 0.0, 2 / 3),
    # repeated tokens count once each: [cat, cat] against [cat]
    ("the cat the cat", ["cat"], 0.0, 2 / 3),
    ("Paris", ["London"], 0.0, 0.0),
    # several references: the best of each measure, here from different references
    ("Denver Broncos", ["Broncos", "Denver Broncos team"], 0.0, 0.8),
    ("Denver Broncos", ["Broncos", "the Denver Broncos!"], 1.0, 1.0),
    # unanswerable (gold ""): only an empty prediction scores
    ("", [], 1.0, 1.0),
    ("a span", [], 0.0, 0.0),
    ("", ["1980"], 0.0, 0.0),
    # a prediction that normalises to nothing is empty
    ("the", [], 1.0, 1.0),
    # references that normalise to nothing are dropped, as the official script does
    ("", ["the"], 1.0, 1.0),
    ("1980", ["a", "1980"], 1.0, 1.0),
])
def test_exact_match_and_f1(prediction, answers, em, f1):
    got_em, got_f1 = metric.score(prediction, answers)
    assert got_em == em
    assert got_f1 == pytest.approx(f1)


def test_aggregate_is_percent():
    summary = metric.aggregate([(1.0, 1.0), (0.0, 0.5), (0.0, 0.0), (1.0, 1.0)])
    assert summary == {"questions": 4, "exact_match": 50.0, "f1": 62.5}
    assert metric.aggregate([])["f1"] is None


def _write(tmp_path, data) -> str:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_v2_questions_and_doc_ids(tmp_path):
    ctx = "Normandy is a region in France."
    path = _write(tmp_path, {"version": "v2.0", "data": [
        {"title": "Normans", "paragraphs": [
            {"context": ctx, "qas": [
                {"id": "a", "question": "Where is Normandy?",
                 "answers": [{"text": "France", "answer_start": 24},
                             {"text": "in France", "answer_start": 21}]},
                {"id": "b", "question": "Who rules Normandy?", "is_impossible": True,
                 "answers": [], "plausible_answers": [{"text": "France", "answer_start": 24}]},
            ]},
            {"context": "Other text.", "qas": []},
        ]},
        {"title": "Normans", "paragraphs": [{"context": ctx, "qas": [
            {"id": "c", "question": "Is Normandy in France?",
             "answers": [{"text": "France", "answer_start": 24}]}]}]},
    ]})
    questions = read_eval_questions(path)
    assert [q.qid for q in questions] == ["a", "b", "c"]
    assert questions[0].answers == ("France", "in France") and not questions[0].impossible
    assert questions[1].answers == () and questions[1].impossible
    # a repeated context is loaded once: its questions point at the first document
    assert [q.doc_id for q in questions] == ["Normans#0", "Normans#0", "Normans#0"]
    assert [q.qid for q in read_eval_questions(path, limit=2)] == ["a", "b"]


@pytest.mark.parametrize("data, fragment", [
    ([1, 2], "not SQuAD JSON"),
    ({"data": [{"title": "t", "paragraphs": []}]}, "no questions"),
    ({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": "x", "question": "q?", "answers": []}]}]}]}, "not marked is_impossible"),
    ({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": "x", "answers": [{"text": "c"}]}]}]}]}, '"question"'),
])
def test_unscorable_files_are_refused(tmp_path, data, fragment):
    with pytest.raises(EvalFileError, match=fragment):
        read_eval_questions(_write(tmp_path, data))


def test_missing_and_non_json_files_are_refused(tmp_path):
    with pytest.raises(EvalFileError, match="no such file"):
        read_eval_questions(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EvalFileError, match="invalid JSON"):
        read_eval_questions(bad)
