"""Labelled training windows, as the Hugging Face question-answering examples make them.

Each (question, context) pair is tokenised with the fast tokenizer as one
sequence pair, the context cut into windows of ``max_seq_len`` tokens that
overlap by ``doc_stride`` (``truncation="only_second"``, overflowing tokens),
and the answer's character span mapped to token positions through the
tokenizer's offsets. A window that does not hold the whole answer, and every
window of an unanswerable question, is labelled with the CLS position: "not in
this window", the SQuAD v2 way. That label is what makes the reader's span
scores comparable across passages: served, a passage that does not hold the
answer should give its probability mass to CLS, not to a confident wrong span.

Negative paragraphs (``negatives`` per answerable question, drawn from the same
article, none containing a reference answer) add windows of exactly that kind
from text that is on topic but silent on the question.

Hard negatives (``hard_negatives`` per answerable question) are harder still: the
question's own paragraph with the sentence holding the answer cut out. What is left
is on the very topic of the question, often with the words it asks about, the way
SQuAD v2.0's unanswerable questions are, and it is labelled "no answer". A copy in
which a reference answer still appears elsewhere is not made.

Perturbed questions (``perturbed`` per answerable question) keep the paragraph and
change the question instead (:mod:`qasearch.training.perturb`): an entity swapped for
one the paragraph never names, an antonym, a negation. Paired with the paragraph
they were asked on, every window is labelled "no answer": SQuAD v2.0's unanswerable
questions are of this kind, and the shared data holds only 347 of them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from qasearch.training.perturb import NamePool, unanswerable_version
from qasearch.training.squaddata import Example, TrainingData

TOKENIZE_BATCH = 256
# a sentence ends at . ! or ? (a closing quote or bracket may follow) before white space
SENTENCE_END = re.compile(r"[.!?][\"')\]\u201d\u2019]*\s+")


@dataclass(frozen=True)
class Feature:
    """One labelled window; positions index ``input_ids`` (0 = CLS = no answer)."""

    input_ids: list[int]
    token_type_ids: list[int]
    start: int
    end: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class FeatureStats:
    examples: int = 0
    windows: int = 0
    answer_windows: int = 0
    null_windows: int = 0
    negative_windows: int = 0
    hard_negative_windows: int = 0
    perturbed_windows: int = 0
    perturbed_kinds: dict[str, int] = field(default_factory=dict)  # questions per edit
    long_questions: int = 0  # questions over max_question_tokens, left out


def _label(offsets: list[tuple[int, int]], sequence_ids: list[int | None],
           answer: tuple[str, int] | None) -> tuple[int, int]:
    if answer is None:
        return 0, 0
    text, char_start = answer
    char_end = char_start + len(text)
    context = [i for i, s in enumerate(sequence_ids) if s == 1]
    first, last = context[0], context[-1]
    if offsets[first][0] > char_start or offsets[last][1] < char_end:
        return 0, 0  # the answer is not (wholly) in this window
    start = first
    while start <= last and offsets[start][0] <= char_start:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= char_end:
        end -= 1
    return start - 1, end + 1


def _negative_contexts(data: TrainingData, examples: list[Example], rate: float,
                       rng: random.Random) -> list[tuple[Example, str]]:
    """(example, paragraph of the same article without any of its answers) pairs."""
    if rate <= 0:
        return []
    pairs = []
    for example in examples:
        if not example.answerable:
            continue
        whole, part = int(rate), rate - int(rate)
        wanted = whole + (1 if rng.random() < part else 0)
        if not wanted:
            continue
        answers = [text.lower() for text, _ in example.answers]
        pool = [i for i in data.articles[example.article] if i != example.paragraph
                and not any(a in data.contexts[i].lower() for a in answers)]
        for index in rng.sample(pool, min(wanted, len(pool))):
            pairs.append((example, data.contexts[index]))
    return pairs


def without_answer_sentence(context: str, answer: tuple[str, int]) -> str | None:
    """``context`` without the sentence(s) that hold ``answer`` (text, character start);
    None when nothing would be left."""
    text, start = answer
    end = start + len(text)
    cuts = [0] + [m.end() for m in SENTENCE_END.finditer(context)] + [len(context)]
    kept = [context[a:b] for a, b in zip(cuts, cuts[1:]) if b <= start or a >= end]
    rest = "".join(kept).strip()
    return rest or None


def _hard_negative_contexts(examples: list[Example], rate: float,
                            rng: random.Random) -> list[tuple[Example, str]]:
    """(example, its own paragraph without the answer's sentence) pairs."""
    if rate <= 0:
        return []
    pairs = []
    for example in examples:
        if not example.answerable or rng.random() >= rate:
            continue
        rest = without_answer_sentence(example.context, example.answers[0])
        if rest is None:
            continue
        lowered = rest.lower()
        if any(text.lower() in lowered for text, _ in example.answers):
            continue  # the answer is also said elsewhere: still answerable
        pairs.append((example, rest))
    return pairs


def _perturbed_questions(data: TrainingData, examples: list[Example], rate: float,
                         rng: random.Random, kinds: dict[str, int]) -> list[tuple[str, str]]:
    """(edited question, its own paragraph) pairs; ``kinds`` counts the edits made."""
    if rate <= 0:
        return []
    article_of = [0] * len(data.contexts)
    for article, paragraphs in enumerate(data.articles):
        for index in paragraphs:
            article_of[index] = article
    pool = NamePool(data.contexts, article_of)
    pairs = []
    for example in examples:
        if not example.answerable or rng.random() >= rate:
            continue
        made = unanswerable_version(example.question, example.context,
                                    [text for text, _ in example.answers],
                                    example.article, pool, rng)
        if made:
            pairs.append((made[0], example.context))
            kinds[made[1]] = kinds.get(made[1], 0) + 1
    return pairs


def build_features(data: TrainingData, tokenizer, *, max_seq_len: int, doc_stride: int,
                   max_question_tokens: int, negatives: float = 0.0,
                   hard_negatives: float = 0.0, perturbed: float = 0.0,
                   seed: int = 0) -> tuple[list[Feature], FeatureStats]:
    """Every labelled window of ``data``: answer windows, null windows, negatives, hard
    negatives and perturbed questions."""
    stats = FeatureStats()
    kept = []
    for example in data.examples:
        n = len(tokenizer(example.question, add_special_tokens=False)["input_ids"])
        if n > max_question_tokens:
            stats.long_questions += 1
        else:
            kept.append(example)
    stats.examples = len(kept)
    features: list[Feature] = []
    # (question, context, answer, kind): "own" and "perturbed" keep every window, the
    # negatives their first window only (the one the retriever's passage most resembles)
    jobs: list[tuple[str, str, tuple[str, int] | None, str]] = [
        (e.question, e.context, e.answers[0] if e.answers else None, "own") for e in kept
    ]
    jobs += [(e.question, ctx, None, "negative")
             for e, ctx in _negative_contexts(data, kept, negatives, random.Random(seed))]
    # a generator of its own: adding hard negatives leaves the negatives as they were
    jobs += [(e.question, ctx, None, "hard")
             for e, ctx in _hard_negative_contexts(kept, hard_negatives,
                                                   random.Random(seed + 1))]
    jobs += [(q, ctx, None, "perturbed")
             for q, ctx in _perturbed_questions(data, kept, perturbed, random.Random(seed + 2),
                                                stats.perturbed_kinds)]
    for at in range(0, len(jobs), TOKENIZE_BATCH):
        chunk = jobs[at : at + TOKENIZE_BATCH]
        enc = tokenizer(
            [j[0] for j in chunk], [j[1] for j in chunk], truncation="only_second",
            max_length=max_seq_len, stride=doc_stride, return_overflowing_tokens=True,
            return_offsets_mapping=True, padding=False,
        )
        for k, job in enumerate(enc["overflow_to_sample_mapping"]):
            _, _, answer, kind = chunk[job]
            first_window = k == 0 or enc["overflow_to_sample_mapping"][k - 1] != job
            if kind in ("negative", "hard") and not first_window:
                continue  # a negative paragraph gives its first window only
            start, end = _label(enc["offset_mapping"][k], enc.sequence_ids(k), answer)
            types = enc["token_type_ids"][k] if "token_type_ids" in enc else \
                [0] * len(enc["input_ids"][k])
            features.append(Feature(enc["input_ids"][k], types, start, end))
            stats.windows += 1
            if kind == "negative":
                stats.negative_windows += 1
            elif kind == "hard":
                stats.hard_negative_windows += 1
            elif kind == "perturbed":
                stats.perturbed_windows += 1
            elif start:
                stats.answer_windows += 1
            else:
                stats.null_windows += 1
    return features, stats
