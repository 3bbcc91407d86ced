"""The reader tokenizer's pair template, read from tokenizer.json.

The QA reader sees ``prefix question middle passage suffix`` (for BERT:
``[CLS] q [SEP] p [SEP]``, for RoBERTa ``<s> q </s></s> p </s>``). The template is
taken from the tokenizer's own post-processor, so windows built from pre-tokenised
ids are the sequences the tokenizer itself would have produced.

Word boundaries are not read from the vocabulary: the Hugging Face QA pipeline
widens an answer to the words the tokenizer's pre-tokenizer made, so the word index
of every passage token is stored with the passage (:class:`gears.reader.PassageTokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer


@dataclass(frozen=True, eq=False)
class Specials:
    """Special tokens of a pair sequence."""

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


def from_tokenizer(
    tokenizer: Tokenizer, cls_id: int | None, sep_id: int | None, pad_id: int | None
) -> Specials:
    """Read the pair template of ``tokenizer``.

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
    )
