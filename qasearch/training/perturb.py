"""Unanswerable questions made from answerable ones, of the kinds SQuAD v2.0's writers made.

The shared training data holds 11,836 answerable questions but only 347 unanswerable
ones, while half of SQuAD v2.0's dev questions are unanswerable. SQuAD v2.0's writers
made theirs by editing a question its paragraph answers (Rajpurkar et al., 2018,
table 3): swapping an entity (21 %), an antonym (20 %), a negation (9 %), and more.
This module makes the three kinds whose result is unanswerable by construction:

- **entity swap**: a name or number of the question that its paragraph says is
  replaced by one the paragraph never mentions, drawn from another article
  ("Who first isolated adenoviruses in 1953?" -> "... in 1968?");
- **antonym**: a word of a fixed list of opposites is replaced by its opposite
  ("first" -> "last", "largest" -> "smallest");
- **negation**: "not" goes after the question's auxiliary ("What did X build?" ->
  "What did X not build?").

Each is paired with the question's own paragraph and labelled "no answer", so the
reader learns that the very passage a question was asked on need not answer it. An
antonym or negation can leave a question the paragraph still answers; these are the
rarer kinds here (a swap is tried first 60 % of the time, an antonym 25 %, a
negation 15 %; when the first does not apply a swap or an antonym is tried) and the
noise is measured by the dev scores, not assumed away.
"""

from __future__ import annotations

import random
import re

# a run of capitalised words, joined by the few lower-case words names hold
NAME = re.compile(r"\b[A-Z][\w'\u2019-]*(?:\s+(?:of|the|de|von|van|and|du|la|del)?\s*"
                  r"[A-Z][\w'\u2019-]*)*")
POSSESSIVE = re.compile(r"['\u2019]s?$")
NUMBER = re.compile(r"\b\d+(?:[,.]\d+)*\b")
# capitalised at the start of a question or sentence, not names
NOT_NAMES = frozenset("""
a an the what who whom whose when where which why how in on at of for from to by with
during after before since until under over as is was are were did does do can could
has have had will would should may might if this that these those there it its his her
their they he she we i according along about besides apart other another besides into
""".split())
AUXILIARIES = ("is", "was", "are", "were", "did", "does", "do", "can", "could", "has",
               "have", "had", "will", "would", "should", "might")
AUXILIARY = re.compile(r"\b(" + "|".join(AUXILIARIES) + r")\s+(?!not\b|n't\b)(?=\w)",
                       re.IGNORECASE)
_PAIRS = """first last  largest smallest  biggest smallest  most least  highest lowest
earliest latest  oldest youngest  before after  longest shortest  maximum minimum
more fewer  increase decrease  increased decreased  north south  east west  best worst
won lost  win lose  begin end  began ended  start end  started ended  rise fall  rose fell
early late  earlier later  major minor  larger smaller  higher lower  older younger
inside outside  above below  public private  positive negative  success failure
accepted rejected  allowed banned  strongest weakest  richest poorest  top bottom""".split()
ANTONYMS = {**dict(zip(_PAIRS[::2], _PAIRS[1::2])), **dict(zip(_PAIRS[1::2], _PAIRS[::2]))}
ANTONYM = re.compile(r"\b(" + "|".join(sorted(ANTONYMS, key=len, reverse=True)) + r")\b",
                     re.IGNORECASE)
SWAP_TRIES = 20
MAX_NAME_WORDS = 3  # names of 3 words and more are swapped for one another
# swap, antonym, negation: the edit tried first; a negation is never the fallback (its
# "not" can land in the wrong place, and it would crowd out the other kinds)
KIND_WEIGHTS = (0.6, 0.25, 0.15)


def names_in(text: str) -> list[str]:
    """The names of ``text``: runs of capitalised words, leading function words dropped."""
    out = []
    for match in NAME.finditer(text):
        words = match.group(0).split()
        while words and words[0].lower() in NOT_NAMES:
            words.pop(0)
        while words and words[-1].lower() in NOT_NAMES:
            words.pop()
        if words:
            words[-1] = POSSESSIVE.sub("", words[-1])
        if words:
            out.append(" ".join(words))
    return out


def mid_sentence_names(text: str) -> set[str]:
    """The names of ``text`` that stand inside a sentence somewhere, where a capital
    letter marks a name and not a sentence's first word."""
    out = set()
    for match in NAME.finditer(text):
        before = text[: match.start()].rstrip()
        if before and before[-1] not in ".!?\"'\u201d:;":
            out.update(names_in(match.group(0)))
    return out


class NamePool:
    """The names of every paragraph, by article and number of words, to swap into
    questions."""

    def __init__(self, contexts: list[str], article_of: list[int]) -> None:
        self.by_length: dict[int, list[tuple[str, int]]] = {}
        for i, context in enumerate(contexts):
            for name in sorted(mid_sentence_names(context)):
                words = min(len(name.split()), MAX_NAME_WORDS)
                self.by_length.setdefault(words, []).append((name, article_of[i]))
        self.every = [name for names in self.by_length.values() for name in names]

    def other_name(self, like: str, article: int, context: str,
                   rng: random.Random) -> str | None:
        """A name from another article that ``context`` does not mention, as long as
        ``like`` (in words) where one is found."""
        lowered = context.lower()
        same = self.by_length.get(min(len(like.split()), MAX_NAME_WORDS), [])
        for pool in (same, self.every):
            for _ in range(SWAP_TRIES if pool else 0):
                name, where = rng.choice(pool)
                if where != article and name.lower() not in lowered:
                    return name
        return None


def _other_number(number: str, context: str, rng: random.Random) -> str | None:
    """A number of the same shape as ``number`` that ``context`` does not hold."""
    digits = number.replace(",", "").replace(".", "")
    if not digits.isdigit() or len(digits) > 12:
        return None
    value = int(digits)
    for _ in range(SWAP_TRIES):
        if len(digits) == 4 and 1000 <= value <= 2100:  # a year: a nearby other year
            other = str(value + rng.choice([-1, 1]) * rng.randint(2, 40))
        else:
            other = str(max(1, round(value * rng.choice([0.25, 0.5, 2, 3, 10])))
                        + rng.randint(0, 9))
        if other != digits and not re.search(rf"\b{re.escape(other)}\b",
                                             context.replace(",", "")):
            return other
    return None


def _swap(question: str, context: str, article: int, pool: NamePool,
          rng: random.Random) -> str | None:
    spans = [(m.start(), m.end(), "number") for m in NUMBER.finditer(question)
             if m.group(0) in context]
    for name in set(names_in(question)):
        if name in context:
            at = question.find(name)
            spans.append((at, at + len(name), "name"))
    rng.shuffle(spans)
    for start, end, kind in spans:
        old = question[start:end]
        new = (_other_number(old, context, rng) if kind == "number"
               else pool.other_name(old, article, context, rng))
        if new:
            return question[:start] + new + question[end:]
    return None


def _antonym(question: str) -> str | None:
    match = ANTONYM.search(question)
    if not match:
        return None
    word = match.group(0)
    other = ANTONYMS[word.lower()]
    other = other.capitalize() if word[0].isupper() else other
    return question[: match.start()] + other + question[match.end():]


def _negation(question: str) -> str | None:
    match = AUXILIARY.search(question)
    if not match or match.start() > len(question) // 2:
        return None  # an auxiliary late in the question rarely carries its verb
    return question[: match.end()] + "not " + question[match.end():]


def unanswerable_version(question: str, context: str, answers: list[str], article: int,
                         pool: NamePool, rng: random.Random) -> tuple[str, str] | None:
    """(edited question, kind) that ``context`` does not answer, or None when no edit
    applies; an edit that brings a reference answer into the question is not made."""
    tries = [("swap", lambda: _swap(question, context, article, pool, rng)),
             ("antonym", lambda: _antonym(question)),
             ("negation", lambda: _negation(question))]
    first = rng.choices(range(len(tries)), weights=KIND_WEIGHTS)[0]
    order = [tries[first]] + [t for t in tries[:2] if t is not tries[first]]
    for kind, edit in order:
        edited = edit()
        if edited and edited != question and not any(
                a.lower() in edited.lower() for a in answers):
            return edited, kind
    return None
