"""The exact reader against the Hugging Face question-answering pipeline.

Our path: passage tokenised once without special tokens (as the worker stores it),
windows built from ids, padded to length buckets, run through the *traced* reader
from a model package, decoded. Their path: ``pipeline("question-answering")`` on
the eager model and the fast tokenizer. Same answers, same character offsets,
scores within 1e-4, over a few hundred generated (question, passage) pairs that
include passages needing several windows, tiny max_answer_len, top_k > 1 and
handle_impossible_answer. The models have random QA heads: only mechanics are
compared, the answers mean nothing.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gears import reader
from gears.tensorize import passage_tokens
from loaders import model_push
from qasearch.core import keys
from qasearch.core.models import LoadedModel
from tests import families, tiny_models

BUCKET = 16  # the default length bucket (settings.length_bucket_tokens)
SCORE_TOL = 1e-4

WORDS = (
    "the a of and to in is was for on that with as by at from his her it an were are which "
    "this be or has had not but first one two new after also their time they when who "
    "Paris London Redis cluster question answer passage document model server shard "
    "antidisestablishmentarianism unbelievably photosynthesis internationalization "
    "hyperparameterisation counterintuitive electroencephalography Mississippi "
    "Schwarzenegger Tchaikovsky Nguyen Dvořák café naïve résumé São Zürich "
    "1998 2024 3.14 42 1,000,000 10km 5pm COVID-19 e-mail U.S.A. don't it's "
    "東京 北京 データ emoji🙂 ₂ ½"
).split()
PUNCT = [",", ".", ";", ":", "!", "?", "(", ")", "\"", "-", "'s"]

# (max_seq_len, doc_stride, top_k, max_answer_len, handle_impossible_answer)
CONFIGS = [
    (128, 32, 1, 15, False),
    (128, 64, 3, 15, False),
    (128, 32, 1, 15, True),
    (128, 64, 2, 3, True),
    (96, 40, 1, 1, False),
    (128, 100, 1, 30, False),
]


def sentence(rng: random.Random, n_words: int) -> str:
    out = []
    for _ in range(n_words):
        word = rng.choice(WORDS)
        if rng.random() < 0.15:
            word = word.capitalize()
        out.append(word)
        if rng.random() < 0.12:
            out.append(rng.choice(PUNCT))
    text = " ".join(out)
    if rng.random() < 0.2:
        text = text.replace(" ,", ",").replace(" .", ".")  # no space before punctuation
    if rng.random() < 0.1:
        text = "  " + text.replace(" ", "  ", 3) + " \n"  # odd whitespace, offsets must hold
    return text


def make_pairs(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for i in range(count):
        question = sentence(rng, rng.randint(2, 14)).strip() + "?"
        # Mostly one or two windows, regularly many (passages up to ~500 tokens).
        n = rng.choice([rng.randint(1, 40), rng.randint(40, 120), rng.randint(120, 320)])
        if i % 23 == 0:
            n = rng.randint(1, 3)
        pairs.append((question, sentence(rng, n)))
    return pairs


def refuses(call, *args, **kwargs) -> bool:
    """Whether the pipeline refuses: its tokenizer raises, or panics (a BaseException)."""
    try:
        call(*args, **kwargs)
    except BaseException:
        return True
    return False


def as_list(result) -> list[dict]:
    if isinstance(result, dict):
        return [result]
    return list(result)


def ours(model: LoadedModel, question: str, context: str, cfg) -> list[reader.Answer]:
    max_seq_len, stride, top_k, max_answer_len, impossible = cfg
    tokens = passage_tokens(model, context)  # what the worker stores for the passage
    windows = reader.build_windows(
        model.question_ids(keys.question_form(question)), tokens, max_seq_len, stride,
        model.specials,
    )
    batch = reader.pad_batch(windows, BUCKET)
    start, end = model.reader_logits(*batch)
    return reader.decode(
        windows, list(start), list(end), context, tokens.offsets,
        top_k=top_k, max_answer_len=max_answer_len, handle_impossible_answer=impossible,
    )


def theirs(qa, question: str, context: str, cfg) -> list[dict]:
    max_seq_len, stride, top_k, max_answer_len, impossible = cfg
    return as_list(qa(
        question=question, context=context, max_seq_len=max_seq_len, doc_stride=stride,
        top_k=top_k, max_answer_len=max_answer_len, handle_impossible_answer=impossible,
    ))


def compare(model: LoadedModel, qa, pairs, configs, max_refused: float = 0.05) -> tuple[int, int]:
    """Checks every pair; returns (pairs compared, pairs needing more than one window).

    A pair our reader refuses (ValueError) must be refused by the pipeline too.
    """
    multi = refused = 0
    for i, (question, context) in enumerate(pairs):
        cfg = configs[i % len(configs)]
        where = f"pair {i} cfg {cfg}: q={question!r} c={context[:80]!r}..."
        try:
            got = ours(model, question, context, cfg)
        except ValueError:
            # Question too long for the stride: the pipeline must refuse it too.
            assert refuses(theirs, qa, question, context, cfg), where
            refused += 1
            continue
        want = theirs(qa, question, context, cfg)
        assert len(got) == len(want), f"{where}\n ours {got}\n pipeline {want}"
        for g, w in zip(got, want):
            assert (g.text, g.start, g.end) == (w["answer"], w["start"], w["end"]), (
                f"{where}\n ours {got}\n pipeline {want}"
            )
            assert abs(g.score - w["score"]) < SCORE_TOL, f"{where}\n ours {got}\n pipeline {want}"
        n_tokens = len(model.reader_tokenizer.encode(context, add_special_tokens=False).ids)
        multi += n_tokens + len(model.question_ids(question)) + 3 > cfg[0]
    assert refused <= len(pairs) * max_refused, f"{refused} pairs refused: the generator is off"
    return len(pairs) - refused, multi


def pipeline_for(eager, tokenizer):
    from transformers import pipeline

    return pipeline("question-answering", model=eager, tokenizer=tokenizer, device="cpu")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_models.minilm_tokenizer()


@pytest.fixture(scope="module")
def tiny(tokenizer):
    package = tiny_models.tiny_package(seed=0)
    eager = tiny_models.tiny_reader(seed=0)  # same seed: same weights as the package
    return LoadedModel.from_package(package, threads=1), pipeline_for(eager, tokenizer)


@pytest.fixture(scope="module")
def minilm(tokenizer):
    eager, tok, trained = model_push.load_reader(None, offline_minilm=True)
    assert trained is False
    package, report = model_push.build_package(
        eager, tok, trained, tiny_models.tiny_embedder(), tokenizer, 64,
        name="minilm-untrained", source="offline-minilm", embedder_source="tests/tiny",
        max_seq_len=384,
    )
    assert package.trained is False and report.warnings  # never shown as real answers
    return LoadedModel.from_package(package, threads=1), pipeline_for(eager, tok)


def test_tiny_reader_matches_pipeline(tiny):
    model, qa = tiny
    torch.manual_seed(0)
    checked, multi = compare(model, qa, make_pairs(seed=1, count=300), CONFIGS)
    assert checked >= 290 and multi >= 60  # plenty of multi-window passages


def test_minilm_reader_matches_pipeline(minilm):
    model, qa = minilm
    configs = [(256, 64, 1, 15, False), (128, 32, 2, 15, True), (384, 128, 1, 15, False)]
    checked, multi = compare(model, qa, make_pairs(seed=2, count=30), configs)
    assert checked >= 29 and multi >= 3


def test_edge_cases_match_pipeline(tiny):
    model, qa = tiny
    q = "what is the answer?"
    n_q = len(model.question_ids(q))
    fits = 128 - 3 - n_q  # exactly the budget of one window, then one token more
    word_pairs = [
        (q, "answer"),
        (q, " ".join(["word"] * fits)),
        (q, " ".join(["word"] * (fits + 1))),
        (q, "x " * 300),
        (q, "[CLS] answer [SEP] passage with special tokens written out"),
    ]
    compare(model, qa, word_pairs, [(128, 32, 1, 15, False), (128, 64, 3, 15, True)])


def test_windows_follow_tokenizer_overflow(tokenizer, tiny):
    model, _ = tiny
    question = "who wrote the paper?"
    context = " ".join(f"token{i}" for i in range(150))
    enc = tokenizer(
        text=question, text_pair=context, truncation="only_second", max_length=64, stride=16,
        return_overflowing_tokens=True, return_token_type_ids=True,
    )
    windows = reader.build_windows(
        model.question_ids(question), passage_tokens(model, context), 64, 16, model.specials,
    )
    assert [w.input_ids.tolist() for w in windows] == enc["input_ids"]
    assert [w.token_type_ids.tolist() for w in windows] == enc["token_type_ids"]


def test_impossible_configurations_raise_like_the_pipeline(tiny):
    model, qa = tiny
    context = "word " * 200
    long_question = "why " * 40 + "?"
    q_ids = model.question_ids(long_question)
    tokens = passage_tokens(model, context)
    for max_len, stride in [(64, 32), (40, 8), (64, 65)]:
        with pytest.raises(ValueError):
            reader.build_windows(q_ids, tokens, max_len, stride, model.specials)
        assert refuses(qa, question=long_question, context=context,
                       max_seq_len=max_len, doc_stride=stride)


def test_padding_does_not_change_answers(tiny):
    model, _ = tiny
    question, context = make_pairs(seed=5, count=1)[0]
    tokens = passage_tokens(model, context * 3)
    offsets = tokens.offsets
    windows = reader.build_windows(model.question_ids(question), tokens, 128, 32,
                                   model.specials)
    tight = [model.reader_logits(*reader.pad_batch([w], 1)) for w in windows]
    padded = model.reader_logits(*reader.pad_batch(windows, 256))
    assert padded[0].shape == (len(windows), 256)
    a = reader.decode(windows, [s[0] for s, _ in tight], [e[0] for _, e in tight],
                      context * 3, offsets, top_k=3)
    b = reader.decode(windows, list(padded[0]), list(padded[1]), context * 3, offsets, top_k=3)
    assert [(x.text, x.start, x.end) for x in a] == [(x.text, x.start, x.end) for x in b]
    assert np.allclose([x.score for x in a], [x.score for x in b], atol=SCORE_TOL)


@pytest.fixture(scope="module", params=sorted(families.FAMILIES))
def family(request, tmp_path_factory, tokenizer):
    """A tiny checkpoint of one reader family, loaded as ``qasearch model push`` loads it."""
    folder, _, _ = families.build(request.param, tmp_path_factory.mktemp(request.param))
    eager, tok, trained = model_push.load_reader(str(folder))
    try:
        package, _ = model_push.build_package(
            eager, tok, trained, tiny_models.tiny_embedder(), tokenizer, 64,
            name=request.param, source=str(folder), embedder_source="tests/tiny",
            max_seq_len=128,
        )
    except model_push.ModelPushError as exc:  # refused at push: nothing to compare
        pytest.skip(f"{request.param} refused at push: {exc}")
    return LoadedModel.from_package(package, threads=1), pipeline_for(eager, tok)


def test_every_reader_family_matches_pipeline(family):
    """Cased questions, punctuation, digits and odd spacing, over several windows."""
    model, qa = family
    # tiny vocabularies make long questions: more of them leave no room for stride 100
    checked, multi = compare(model, qa, make_pairs(seed=7, count=60), CONFIGS, max_refused=0.15)
    assert checked >= 51 and multi >= 10
