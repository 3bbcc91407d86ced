"""Synthetic corpora of any size, for scale tests — never mistaken for real text.

Every document is labelled: its id is ``synth-<seven digits>``, its title starts
with ``SYNTHETIC``, and its text is made of random but word-like sentences: a fixed
vocabulary of common English function words and made-up words built from
syllables. Nothing in it is true or meaningful.

Deterministic: document ``i`` depends only on ``(seed, i)``, so a corpus of 1,000
passages is the first 1,000 of the corpus of 100,000 with the same seed. Each
document is one passage: its token count (MiniLM WordPiece, the splitter's
tokenizer) is kept between ``MIN_TOKENS`` and ``MAX_TOKENS``, below the default
passage bound of 200 tokens, so the splitter keeps it whole. Token counts come from
a table of the vocabulary's words, exact because WordPiece splits on whitespace and
punctuation first.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from loaders.documents import Document

ID_PREFIX = "synth-"
TITLE_PREFIX = "SYNTHETIC"
SOURCE = "synthetic"
VOCABULARY_SEED = 20240601  # fixed: the vocabulary never depends on --seed
MADE_UP_WORDS = 3000
MIN_TOKENS, MAX_TOKENS = 60, 180

FUNCTION_WORDS = (
    "the a an of and to in is was for on that with as by at from it its this which "
    "were are be been has had not but or also their they when after before between "
    "into over under during each many most some other more than about while"
).split()
ONSETS = "b c d f g h k l m n p r s t v w z br cr dr fl gr pl st tr th sh ch".split()
VOWELS = "a e i o u ai ea ou io".split()
CODAS = ["", "", "", "n", "r", "s", "l", "m", "nd", "st", "rk", "th"]


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """The made-up words: one to three syllables each, drawn once with a fixed seed."""
    rng = random.Random(VOCABULARY_SEED)
    words: set[str] = set()
    while len(words) < MADE_UP_WORDS:
        syllables = rng.choice((1, 2, 2, 2, 3))
        words.add("".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                          for _ in range(syllables)))
    return tuple(sorted(words))


@lru_cache(maxsize=1)
def _token_counts() -> dict[str, int]:
    from loaders.splitter import default_tokenizer

    tokenizer = default_tokenizer()
    words = list(FUNCTION_WORDS) + list(vocabulary())
    encoded = tokenizer.encode_batch(words, add_special_tokens=False)
    return {w: len(e.ids) for w, e in zip(words, encoded)}


def _word(rng: random.Random) -> str:
    return rng.choice(FUNCTION_WORDS) if rng.random() < 0.45 else rng.choice(vocabulary())


def _sentence(rng: random.Random, counts: dict[str, int]) -> tuple[str, int]:
    words = [_word(rng) for _ in range(rng.randint(6, 16))]
    tokens = sum(counts[w] for w in words) + 1  # the full stop
    if len(words) > 8 and rng.random() < 0.3:
        at = rng.randint(3, len(words) - 3)
        words[at] += ","
        tokens += 1
    words[0] = words[0].capitalize()
    return " ".join(words) + ".", tokens


def passage_text(seed: int, index: int) -> str:
    """The text of document ``index``: whole sentences, ``MIN_TOKENS``..``MAX_TOKENS`` tokens."""
    rng = random.Random(f"qasearch-synthetic:{seed}:{index}")
    counts = _token_counts()
    target = rng.randint(MIN_TOKENS + 20, MAX_TOKENS - 20)
    sentences: list[str] = []
    total = 0
    while total < target:
        text, tokens = _sentence(rng, counts)
        if total + tokens > MAX_TOKENS:
            if total >= MIN_TOKENS:
                break
            continue  # too long to fit: draw another
        sentences.append(text)
        total += tokens
    return " ".join(sentences)


def doc_id(index: int) -> str:
    return f"{ID_PREFIX}{index:07d}"


def title(seed: int, index: int) -> str:
    rng = random.Random(f"qasearch-synthetic-title:{seed}:{index}")
    words = " ".join(rng.choice(vocabulary()).capitalize() for _ in range(2))
    return f"{TITLE_PREFIX} {words} {index}"


def documents(count: int, seed: int = 0, start: int = 0) -> Iterator[Document]:
    """Documents ``start`` .. ``start + count - 1`` of the synthetic corpus ``seed``."""
    for i in range(start, start + count):
        yield Document(doc_id=doc_id(i), title=title(seed, i), text=passage_text(seed, i),
                       source=SOURCE)


@dataclass(frozen=True)
class SyntheticQuestion:
    qid: str
    question: str
    answer: str
    answer_start: int
    context: str
    doc_id: str


def question_for(seed: int, index: int, number: int = 0) -> SyntheticQuestion:
    """A word-like question about document ``index``: a sentence of it with a span taken out
    (the span is the "answer"; meaningless, but it shares words with its passage)."""
    text = passage_text(seed, index)
    rng = random.Random(f"qasearch-synthetic-question:{seed}:{index}:{number}")
    sentences = [s for s in text.split(". ") if len(s.split()) >= 6]
    sentence = rng.choice(sentences).rstrip(".")
    words = sentence.split()
    length = rng.randint(1, 3)
    at = rng.randint(1, len(words) - length)
    answer = " ".join(words[at : at + length]).rstrip(",")
    asked = [w.rstrip(",").lower() for w in words[:at] + words[at + length :]]
    question = "What " + " ".join(asked) + "?"
    start = text.find(sentence) + len(" ".join(words[:at])) + 1
    return SyntheticQuestion(f"{doc_id(index)}-q{number}", question, answer, start, text,
                             doc_id(index))


def questions(count: int, passages: int, seed: int = 0) -> list[SyntheticQuestion]:
    """``count`` questions about documents spread evenly over the first ``passages``."""
    if passages < 1:
        raise ValueError("need at least one passage to ask about")
    step = max(1, passages // max(1, count))
    return [question_for(seed, (i * step) % passages, i // passages) for i in range(count)]


def write_jsonl(path: str | Path, count: int, seed: int = 0) -> int:
    """Write ``count`` documents as JSONL (``qasearch load`` reads it); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        for doc in documents(count, seed):
            f.write(json.dumps({"id": doc.doc_id, "title": doc.title, "text": doc.text}) + "\n")
            written += 1
    return written


def write_squad_questions(path: str | Path, found: list[SyntheticQuestion]) -> None:
    """Questions in SQuAD format (``qasearch bench --questions`` reads it)."""
    data = {
        "version": "synthetic",
        "data": [{
            "title": f"{TITLE_PREFIX} questions",
            "paragraphs": [{
                "context": q.context,
                "qas": [{"id": q.qid, "question": q.question,
                         "answers": [{"text": q.answer, "answer_start": q.answer_start}]}],
            } for q in found],
        }],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
