"""Saying "no answer": the rule, its threshold's sources, the calibration that chooses it,
and the hard negatives that teach a reader when to say it."""

from __future__ import annotations

import json
import math

import pytest

from qasearch.bench.evaluation import calibration
from qasearch.bench.evaluation.calibration import Item
from qasearch.core import no_answer
from qasearch.core.settings import load_settings
from qasearch.training.features import build_features, without_answer_sentence
from qasearch.training.squaddata import Example, TrainingData
from tests import tiny_models


def test_the_margin_is_the_log_ratio_of_null_and_span():
    assert no_answer.margin(0.5, 0.05) == pytest.approx(math.log(0.1))
    assert no_answer.margin(0.01, 0.01) == 0.0
    # an underflowed probability is a very small one, never -inf or an error
    assert math.isfinite(no_answer.margin(0.0, 0.3)) and no_answer.margin(0.0, 0.3) > 60


def test_the_rule_at_a_threshold():
    assert no_answer.says_no_answer(0.5, 0.6, 0.0)  # the pipeline's rule: null beats span
    assert not no_answer.says_no_answer(0.5, 0.4, 0.0)
    assert no_answer.says_no_answer(0.5, 0.004, -5.0)  # log(0.008) = -4.8 > -5
    assert not no_answer.says_no_answer(0.5, 0.003, -5.0)  # log(0.006) = -5.1
    assert no_answer.says_no_answer(None, None, 10.0)  # nothing found
    assert not no_answer.says_no_answer(0.1, None, -10.0)  # no null score: answer


def test_the_served_threshold_is_the_setting_then_the_package_then_zero():
    calibrated = {"no_answer": {"threshold": -7.5}}
    assert no_answer.served_threshold("", {}) == no_answer.PIPELINE_THRESHOLD == 0.0
    assert no_answer.served_threshold("", calibrated) == -7.5
    assert no_answer.served_threshold(" -2 ", calibrated) == -2.0
    with pytest.raises(no_answer.NoAnswerError, match="reader.no_answer"):
        no_answer.served_threshold("", {"no_answer": {"threshold": "high"}})


@pytest.mark.parametrize("raw", ["nan", "inf", "low"])
def test_a_bad_threshold_setting_is_refused_when_settings_load(raw):
    with pytest.raises(ValueError, match="QASEARCH_NO_ANSWER_THRESHOLD"):
        load_settings({"QASEARCH_NO_ANSWER_THRESHOLD": raw})
    assert load_settings({"QASEARCH_NO_ANSWER_THRESHOLD": "-3.5"}).no_answer_threshold == "-3.5"


def test_a_folder_keeps_its_threshold_and_a_damaged_file_is_named(tmp_path):
    assert no_answer.read_folder(tmp_path) is None
    no_answer.write_folder(tmp_path, {"threshold": -6.25, "chosen_on": "dev.json"})
    assert no_answer.read_folder(tmp_path) == {"threshold": -6.25, "chosen_on": "dev.json"}
    (tmp_path / no_answer.FILE).write_text(json.dumps({"chosen_on": "x"}))
    with pytest.raises(no_answer.NoAnswerError, match="threshold"):
        no_answer.read_folder(tmp_path)
    (tmp_path / no_answer.FILE).write_text("{not json")
    with pytest.raises(no_answer.NoAnswerError, match=no_answer.FILE):
        no_answer.read_folder(tmp_path)


def _item(margin, right: bool, impossible: bool, group: str = "p") -> Item:
    if impossible:
        return Item(margin, (0.0, 0.0), (1.0, 1.0), True, group)
    return Item(margin, (1.0, 1.0) if right else (0.0, 0.25), (0.0, 0.0), False, group)


def test_calibration_finds_the_threshold_between_answers_and_silence():
    # answerable questions the reader gets right have low margins, unanswerable high
    items = [_item(-9.0, True, False), _item(-8.0, True, False), _item(-7.0, False, False),
             _item(-4.0, False, True), _item(-3.0, False, True), _item(None, False, True)]
    threshold = calibration.best_threshold(items)
    # answering -9, -8 and -7 gains 1 + 1 + 0.25; answering -4 would lose 1
    assert -7.0 < threshold < -4.0 and threshold == pytest.approx(-5.5)
    at = calibration.scores_at(items, threshold)
    assert at["all"]["f1"] == pytest.approx(100 * (1 + 1 + 0.25 + 1 + 1 + 1) / 6, abs=0.01)
    assert at["unanswerable"]["exact_match"] == 100.0 and at["no_answer_share"] == 0.5
    # the pipeline's 0 answers everything that has a span: the unanswerable score 0
    # but the one with no span at all
    pipeline = calibration.scores_at(items, 0.0)
    assert pipeline["unanswerable"]["f1"] == pytest.approx(100 / 3, abs=0.01)


def test_calibration_answers_nothing_when_answers_never_pay():
    items = [_item(-2.0, False, True), _item(-1.0, False, False)]
    assert calibration.best_threshold(items) < -2.0
    assert calibration.scores_at(items, calibration.best_threshold(items))["no_answer_share"] == 1


def test_the_two_fold_figure_scores_each_half_with_the_other_halfs_threshold():
    # the even paragraphs want a high threshold, the odd ones a low one: scored across,
    # each half gets the other's, so the held-out F1 is below the fitted one
    items = []
    for i in range(4):
        group = f"p{i}"
        if i % 2 == 0:
            items += [_item(-2.0, True, False, group), _item(-1.0, True, False, group)]
        else:
            items += [_item(-2.0, False, True, group), _item(-1.0, False, True, group)]
    table = calibration.calibrate(items, "made up")
    assert table["two_fold"]["thresholds"][0] > table["two_fold"]["thresholds"][1]
    assert table["two_fold"]["f1"] < table["at_threshold"]["all"]["f1"]
    assert table["chosen_on"] == "made up"


CONTEXT = ("The castle was built in 1201. It was owned by the Duke of Roe. "
           "Later it burned down. Nobody rebuilt it.")


def test_the_answer_sentence_is_cut_and_the_rest_kept():
    start = CONTEXT.index("Duke of Roe")
    assert without_answer_sentence(CONTEXT, ("Duke of Roe", start)) == (
        "The castle was built in 1201. Later it burned down. Nobody rebuilt it.")
    assert without_answer_sentence("Only one sentence here.", ("one", 5)) is None


def test_hard_negatives_are_own_paragraphs_without_the_answer_labelled_no_answer():
    repeated = CONTEXT + " The Duke of Roe is remembered."
    examples = [
        Example("a", "Who owned the castle?", CONTEXT,
                (("Duke of Roe", CONTEXT.index("Duke of Roe")),), 0, 0),
        # the answer is said twice: cutting one sentence leaves it answerable
        Example("b", "Who owned it?", repeated,
                (("Duke of Roe", repeated.index("Duke of Roe")),), 0, 1),
    ]
    data = TrainingData(examples=examples, contexts=[CONTEXT, repeated], articles=[[0, 1]])
    tokenizer = tiny_models.minilm_tokenizer()
    features, stats = build_features(data, tokenizer, max_seq_len=128, doc_stride=32,
                                     max_question_tokens=64, hard_negatives=1.0, seed=0)
    assert stats.hard_negative_windows == 1 and stats.answer_windows == 2
    hard = features[-1]
    assert (hard.start, hard.end) == (0, 0)
    text = tokenizer.decode(hard.input_ids)
    assert "roe" not in text and "burned" in text
    _, none = build_features(data, tokenizer, max_seq_len=128, doc_stride=32,
                             max_question_tokens=64, seed=0)
    assert none.hard_negative_windows == 0 and len(features) == none.windows + 1
