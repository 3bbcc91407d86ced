"""Unanswerable questions made from answerable ones: each edit, and their training windows."""

from __future__ import annotations

import random

from qasearch.training.features import build_features
from qasearch.training.perturb import NamePool, mid_sentence_names, unanswerable_version
from qasearch.training.squaddata import Example, TrainingData
from tests import tiny_models

CASTLE = ("The castle of Roe was built in 1201 by Duke Albert. Later it burned down, "
          "and the town of Roe grew around its ruins.")
RIVER = "Boats on the river reach Lake Ontario. The river is crossed at Port Hope."


def _pool() -> NamePool:
    return NamePool([CASTLE, RIVER], [0, 1])


def test_names_are_taken_from_inside_sentences_without_their_first_word():
    assert mid_sentence_names(CASTLE) == {"Roe", "Duke Albert"}
    assert mid_sentence_names(RIVER) == {"Lake Ontario", "Port Hope"}  # not "Boats"


def test_a_name_the_paragraph_says_is_swapped_for_one_of_another_article():
    for seed in range(20):
        made = unanswerable_version("Who built the castle of Roe?", CASTLE, ["Duke Albert"],
                                    0, _pool(), random.Random(seed))
        if made and made[1] == "swap":
            question = made[0]
            assert question.startswith("Who built the castle of ")
            swapped = question.removeprefix("Who built the castle of ").rstrip("?")
            assert swapped in {"Lake Ontario", "Port Hope"} and swapped not in CASTLE
            return
    raise AssertionError("no swap in 20 seeds")


def test_a_year_is_swapped_for_one_the_paragraph_does_not_hold():
    for seed in range(20):
        made = unanswerable_version("Who built the castle in 1201?", CASTLE, ["Duke Albert"],
                                    0, _pool(), random.Random(seed))
        if made and made[1] == "swap":
            year = made[0].removeprefix("Who built the castle in ").rstrip("?")
            assert year.isdigit() and len(year) == 4 and year != "1201" and year not in CASTLE
            return
    raise AssertionError("no swap in 20 seeds")


def test_an_antonym_or_a_negation_when_nothing_can_be_swapped():
    kinds = {}
    for seed in range(40):
        made = unanswerable_version("What was the first thing that burned?", CASTLE,
                                    ["castle"], 0, _pool(), random.Random(seed))
        assert made is not None
        kinds[made[1]] = made[0]
    assert kinds["antonym"] == "What was the last thing that burned?"
    assert kinds["negation"] == "What was not the first thing that burned?"
    assert "swap" not in kinds


def test_no_edit_when_none_applies_or_the_edit_would_name_the_answer():
    assert unanswerable_version("Why did it burn down?", CASTLE, ["fire"], 0, _pool(),
                                random.Random(0)) in (None, ("Why did not it burn down?",
                                                             "negation"))
    for seed in range(20):  # "first" -> "last" would put the answer "last" in the question
        made = unanswerable_version("Which came first?", "It came last.", ["last"], 0,
                                    _pool(), random.Random(seed))
        assert made is None or "last" not in made[0].lower()


def test_perturbed_questions_are_labelled_no_answer_on_their_own_paragraph():
    examples = [Example("a", "Who built the castle of Roe in 1201?", CASTLE,
                        (("Duke Albert", CASTLE.index("Duke Albert")),), 0, 0),
                Example("b", "Where is Port Hope?", RIVER,
                        (("the river", RIVER.index("the river")),), 1, 1)]
    data = TrainingData(examples=examples, contexts=[CASTLE, RIVER], articles=[[0], [1]])
    tokenizer = tiny_models.minilm_tokenizer()
    features, stats = build_features(data, tokenizer, max_seq_len=128, doc_stride=32,
                                     max_question_tokens=64, perturbed=1.0, seed=0)
    assert stats.answer_windows == 2 and stats.perturbed_windows == 2
    assert sum(stats.perturbed_kinds.values()) == 2
    for feature in features[-2:]:
        assert (feature.start, feature.end) == (0, 0)
    first = tokenizer.decode(features[-2].input_ids)
    assert "duke albert" in first  # its own paragraph
    _, none = build_features(data, tokenizer, max_seq_len=128, doc_stride=32,
                             max_question_tokens=64, seed=0)
    assert none.perturbed_windows == 0 and none.windows == 2
