"""The reader tokenizer's pair template and word boundaries, read from tokenizer.json.

The QA reader sees ``prefix question middle passage suffix`` (for BERT:
``[CLS] q [SEP] p [SEP]``, for RoBERTa ``<s> q </s></s> p </s>``). The template is
taken from the tokenizer's own post-processor, so windows built from pre-tokenised
ids are the sequences the tokenizer itself would have produced.

``word_start[id]`` says whether token ``id`` begins a word. The Hugging Face QA
pipeline widens an answer to whole words; this table lets the reader do the same
from token ids alone. It is exact for WordPiece vocabularies (BERT, DistilBERT,
MiniLM, ELECTRA), where exactly the tokens without the ``##`` prefix begin a word;
for other models it is the best guess from the word-start marker (``Ġ``, ``▁``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer


@dataclass(frozen=True, eq=False)
class Specials:
    """Special tokens of a pair sequence and the word-start table of the vocabulary."""

    cls_id: int | None
    sep_id: int | None
    pad_id: int
    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    question_type: int
    passage_type: int
    word_start: np.ndarray  # bool [vocab size]

    @property
    def count(self) -> int:
        """Special tokens added to a (question, passage) pair."""
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def plain_copy(tokenizer: Tokenizer) -> Tokenizer:
    """A copy without the truncation and padding a tokenizer.json may carry."""
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def _pre_tokenizer_json(tokenizer: Tokenizer) -> str:
    return json.dumps(json.loads(tokenizer.to_str())["pre_tokenizer"])


def _word_start_table(tokenizer: Tokenizer) -> np.ndarray:
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    table = np.ones(max(vocab.values()) + 1, dtype=bool)
    model = tokenizer.model
    kind = type(model).__name__
    if kind == "WordPiece":
        marker, starts_with_marker = model.continuing_subword_prefix, False
    elif kind == "BPE" and "ByteLevel" in _pre_tokenizer_json(tokenizer):
        marker, starts_with_marker = "\u0120", True  # byte-level BPE marks a leading space
    elif kind in {"Unigram", "BPE"}:
        marker, starts_with_marker = "\u2581", True  # sentencepiece marks a word start
    else:
        return table  # unknown: every token its own word (no widening)
    added = {t.content for t in tokenizer.get_added_tokens_decoder().values()}
    for token, idx in vocab.items():
        if token in added:
            continue
        has = token.startswith(marker)
        table[idx] = has if starts_with_marker else not has
    return table


def from_tokenizer(
    tokenizer: Tokenizer, cls_id: int | None, sep_id: int | None, pad_id: int | None
) -> Specials:
    """Read the pair template (and word starts) of ``tokenizer``.

    The ids of cls/sep/pad come from the model's tokenizer config (the manifest),
    since tokenizer.json does not name them.
    """
    plain = plain_copy(tokenizer)
    enc = plain.encode("hello", "world")
    seq = enc.sequence_ids
    ids, types = enc.ids, enc.type_ids
    q_pos = [i for i, s in enumerate(seq) if s == 0]
    p_pos = [i for i, s in enumerate(seq) if s == 1]
    if not q_pos or not p_pos:
        raise ValueError("the reader tokenizer does not encode a (question, passage) pair")
    q0, q1, p0, p1 = q_pos[0], q_pos[-1] + 1, p_pos[0], p_pos[-1] + 1
    return Specials(
        cls_id=cls_id,
        sep_id=sep_id,
        pad_id=0 if pad_id is None else pad_id,
        prefix=tuple(ids[:q0]),
        middle=tuple(ids[q1:p0]),
        suffix=tuple(ids[p1:]),
        prefix_types=tuple(types[:q0]),
        middle_types=tuple(types[q1:p0]),
        suffix_types=tuple(types[p1:]),
        question_type=types[q0],
        passage_type=types[p0],
        word_start=_word_start_table(plain),
    )
