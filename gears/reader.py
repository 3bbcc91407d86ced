"""The exact reader: windows and span decoding as the Hugging Face QA pipeline does them.

A passage is never re-tokenised at query time. Its reader token ids and character
offsets (made once, when it was written) and the question's ids are assembled
into the very features ``QuestionAnsweringPipeline.preprocess`` (transformers
4.57, fast tokenizer) builds, and the model's logits are decoded as its
``postprocess`` does. Parity with the pipeline is tested in
``tests/test_reader_parity.py``.

What the pipeline does, and so what this module does:

* Features are ``prefix q middle window suffix`` with ``truncation="only_second"``:
  if question and passage fit in ``max_seq_len`` there is one feature; otherwise
  every window holds ``room = max_seq_len - specials - len(q)`` passage tokens and
  the next window starts ``room - doc_stride`` tokens later, until one reaches
  the passage end (the tokenizers crate's overflow rule). ``doc_stride`` must be
  below ``room`` and at most ``max_seq_len``; the pipeline fails otherwise and so
  do we (``ValueError``). The question is never truncated by the pipeline: the
  caller caps it (``LoadedModel.question_ids``).
* ``p_mask`` is 1 on everything but passage tokens, except CLS positions.
* Per window: masked logits become -10000, softmax, the CLS score gives the null
  score, CLS is zeroed, the ``top_k * 2 + 10`` best spans of the banded outer
  product are kept, each widened to whole words (within the window), and answers
  with equal text (case-insensitive) across candidates and windows add up scores.
* "Whole words" are the tokenizer's own: the pipeline widens with
  ``token_to_word``/``word_to_chars``, i.e. the words its pre-tokenizer split the
  passage into (ByteLevel splits punctuation, digits and ``'s`` into words of their
  own; WordPiece and Metaspace split differently). So the passage carries the word
  index of every token (:class:`PassageTokens`, stored with its ids and offsets),
  never a guess from vocabulary markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qasearch.core.specials import Specials

NULL_SCORE_START = 1000000  # the pipeline's "large and positive" initial null score


@dataclass(frozen=True, eq=False)
class PassageTokens:
    """A passage as the reader holds it: its tokenizer encoding without special tokens."""

    ids: np.ndarray  # int32 [n] reader token ids
    offsets: np.ndarray  # int32 [n, 2] character offsets in the passage text
    words: np.ndarray  # int32 [n] the tokenizer's word index of each token (-1: none)

    @classmethod
    def from_encoding(cls, encoding) -> PassageTokens:
        """From a ``tokenizers`` Encoding of the passage alone (``add_special_tokens=False``)."""
        words = [-1 if w is None else w for w in encoding.word_ids]
        return cls(np.asarray(encoding.ids, dtype=np.int32),
                   np.asarray(encoding.offsets, dtype=np.int32).reshape(-1, 2),
                   np.asarray(words, dtype=np.int32))

    def __post_init__(self) -> None:
        n = np.asarray(self.ids).reshape(-1).shape[0]
        if np.asarray(self.offsets).shape != (n, 2) or np.asarray(self.words).shape != (n,):
            raise ValueError(
                f"offsets of shape {np.asarray(self.offsets).shape} and words of shape "
                f"{np.asarray(self.words).shape} for {n} passage ids"
            )


@dataclass(frozen=True, eq=False)
class Window:
    """One reader input sequence over a slice of a passage (unpadded)."""

    input_ids: np.ndarray  # int64 [L]
    token_type_ids: np.ndarray  # int64 [L]
    p_mask: np.ndarray  # int64 [L]; 1 = cannot be part of an answer
    context_start: int  # position in the sequence of the first passage token
    passage_start: int  # index in the passage of that token
    passage_end: int  # exclusive
    words: np.ndarray  # int32 [n] word index of each passage token (shared by its windows)
    pad_id: int

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def passage_index(self, position: int) -> int | None:
        """The passage token at sequence ``position``, or None outside the passage."""
        rel = position - self.context_start
        if 0 <= rel < self.passage_end - self.passage_start:
            return self.passage_start + rel
        return None


@dataclass(frozen=True)
class Answer:
    text: str
    score: float
    start: int  # character offsets in the passage text
    end: int


def window_ranges(n_question: int, n_passage: int, max_seq_len: int, doc_stride: int,
                  n_special: int) -> list[tuple[int, int]]:
    """Passage token ranges ``[start, stop)`` of the windows, as the tokenizer cuts them."""
    if doc_stride > max_seq_len:
        raise ValueError(f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len})")
    budget = max_seq_len - n_special
    if n_question + n_passage <= budget:
        return [(0, n_passage)]
    room = budget - n_question
    if room <= 0:
        raise ValueError(
            f"a {n_question}-token question leaves no room for the passage in {max_seq_len} tokens"
        )
    if doc_stride >= room:
        raise ValueError(
            f"doc_stride ({doc_stride}) must be below the passage room ({room} tokens) "
            f"left by a {n_question}-token question in {max_seq_len} tokens"
        )
    ranges = []
    for start in range(0, n_passage, room - doc_stride):
        stop = min(start + room, n_passage)
        ranges.append((start, stop))
        if stop == n_passage:
            break
    return ranges


def build_windows(
    question_ids: Sequence[int] | np.ndarray,
    passage: PassageTokens,
    max_seq_len: int,
    doc_stride: int,
    specials: Specials,
) -> list[Window]:
    """The pipeline's features for (question, passage), from pre-tokenised ids."""
    q = np.asarray(question_ids, dtype=np.int64).reshape(-1)
    p = np.asarray(passage.ids, dtype=np.int64).reshape(-1)
    words = np.asarray(passage.words)
    head = np.concatenate([np.asarray(specials.prefix, dtype=np.int64), q,
                           np.asarray(specials.middle, dtype=np.int64)])
    head_types = np.concatenate([
        np.asarray(specials.prefix_types, dtype=np.int64),
        np.full(q.shape[0], specials.question_type, dtype=np.int64),
        np.asarray(specials.middle_types, dtype=np.int64),
    ])
    suffix = np.asarray(specials.suffix, dtype=np.int64)
    suffix_types = np.asarray(specials.suffix_types, dtype=np.int64)
    windows = []
    for start, stop in window_ranges(q.shape[0], p.shape[0], max_seq_len, doc_stride,
                                     specials.count):
        ids = np.concatenate([head, p[start:stop], suffix])
        types = np.concatenate([
            head_types, np.full(stop - start, specials.passage_type, dtype=np.int64), suffix_types
        ])
        p_mask = np.ones(ids.shape[0], dtype=np.int64)
        p_mask[head.shape[0] : head.shape[0] + stop - start] = 0
        if specials.cls_id is not None:
            p_mask[ids == specials.cls_id] = 0  # the pipeline keeps CLS: the "no answer" slot
        windows.append(Window(ids, types, p_mask, head.shape[0], start, stop, words,
                              specials.pad_id))
    return windows


def bucket_length(longest: int, multiple: int) -> int:
    """``longest`` rounded up to the next multiple of ``multiple`` (a length bucket)."""
    step = max(1, int(multiple))
    return -(-longest // step) * step


def pad_batch(
    windows: Sequence[Window], multiple: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, token_type_ids) int64 [b, length], right-padded.

    The length is the longest window rounded up to a multiple of ``multiple`` (1:
    exactly the longest window, as the Hugging Face pipeline pads a batch), so the
    traced reader sees a bounded set of shapes while padding stays small.
    """
    length = bucket_length(max(len(w) for w in windows), multiple)
    ids = np.empty((len(windows), length), dtype=np.int64)
    mask = np.zeros((len(windows), length), dtype=np.int64)
    types = np.zeros((len(windows), length), dtype=np.int64)
    for row, w in enumerate(windows):
        n = len(w)
        ids[row, :n] = w.input_ids
        ids[row, n:] = w.pad_id
        mask[row, :n] = 1
        types[row, :n] = w.token_type_ids
    return ids, mask, types


def _decode_spans(start: np.ndarray, end: np.ndarray, topk: int, max_answer_len: int,
                  undesired_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Kept operation for operation as transformers' decode_spans, so that ties
    # (exact zeros at masked positions) are broken by the same numpy calls.
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    scores_flat = candidates.flatten()
    if topk == 1:
        idx_sort = [np.argmax(scores_flat)]
    elif len(scores_flat) < topk:
        idx_sort = np.argsort(-scores_flat)
    else:
        idx = np.argpartition(-scores_flat, topk)[0:topk]
        idx_sort = idx[np.argsort(-scores_flat[idx])]
    starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
    # nonzero() of a [1, L] array also yields row index 0, so position 0 always
    # passes this filter in the pipeline; the same expression keeps that quirk.
    allowed = undesired_tokens.nonzero()
    desired = np.isin(starts, allowed) & np.isin(ends, allowed)
    starts, ends = starts[desired], ends[desired]
    return starts, ends, candidates[0, starts, ends]


def _select(start: np.ndarray, end: np.ndarray, p_mask: np.ndarray, min_null_score: float,
            top_k: int, max_answer_len: int):
    undesired_tokens = np.abs(p_mask - 1)  # attention mask is all ones: windows are unpadded
    undesired_mask = undesired_tokens == 0.0
    start = np.where(undesired_mask, -10000.0, start)
    end = np.where(undesired_mask, -10000.0, end)
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    # The pipeline takes this minimum only with handle_impossible_answer; it is kept
    # always (it changes no span), so a caller can weigh the null score itself.
    min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
    start[0, 0] = end[0, 0] = 0.0
    starts, ends, scores = _decode_spans(start, end, top_k, max_answer_len, undesired_tokens)
    return starts, ends, scores, min_null_score


def _char_span(window: Window, s: int, e: int, offsets: np.ndarray) -> tuple[int, int]:
    """Characters of the words holding tokens ``s`` and ``e``, limited to the window.

    As the pipeline's ``word_to_chars`` on the window's encoding: from the first token
    of ``s``'s word to the last token of ``e``'s word that the window holds.
    """
    i, j = window.passage_index(s), window.passage_index(e)
    words = window.words
    if i is None or j is None or words[i] < 0 or words[j] < 0:
        # The pipeline's fallback when a token has no word: raw token offsets,
        # and special tokens have offsets (0, 0).
        first = (int(offsets[i][0]), int(offsets[i][1])) if i is not None else (0, 0)
        last = (int(offsets[j][0]), int(offsets[j][1])) if j is not None else (0, 0)
        return first[0], last[1]
    while i > window.passage_start and words[i - 1] == words[i]:
        i -= 1
    while j + 1 < window.passage_end and words[j + 1] == words[j]:
        j += 1
    return int(offsets[i][0]), int(offsets[j][1])


def decode(windows: Sequence[Window], start_logits: Sequence[np.ndarray],
           end_logits: Sequence[np.ndarray], passage_text: str, offsets: np.ndarray,
           **options: Any) -> list[Answer]:
    """The pipeline's answers for one passage, best first (at most ``top_k``); the
    options are :func:`decode_with_null`'s."""
    return decode_with_null(windows, start_logits, end_logits, passage_text, offsets,
                            **options)[0]


def decode_with_null(
    windows: Sequence[Window],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    passage_text: str,
    offsets: np.ndarray,
    top_k: int = 1,
    max_answer_len: int = 15,
    handle_impossible_answer: bool = False,
) -> tuple[list[Answer], float]:
    """The pipeline's answers for one passage, best first (at most ``top_k``), and the
    passage's null score: the lowest, over its windows, of P(start = CLS) x P(end =
    CLS), the pipeline's "no answer" score, comparable with the span scores.

    ``start_logits[i]``/``end_logits[i]`` are window ``i``'s logits; they may be
    longer than the window (padded batch): positions past it are ignored.
    """
    min_null_score: float = NULL_SCORE_START
    found: list[dict] = []
    pre_topk = top_k * 2 + 10  # the pipeline's margin for candidates merged by word alignment
    for window, s_log, e_log in zip(windows, start_logits, end_logits):
        n = len(window)
        start = np.asarray(s_log, dtype=np.float32)[:n][None]
        end = np.asarray(e_log, dtype=np.float32)[:n][None]
        starts, ends, scores, min_null_score = _select(
            start, end, window.p_mask[None], min_null_score, pre_topk, max_answer_len,
        )
        for s, e, score in zip(starts, ends, scores):
            a, b = _char_span(window, int(s), int(e), offsets)
            text = passage_text[a:b]
            same = next((x for x in found if x["answer"].lower() == text.lower()), None)
            if same is not None:
                same["score"] += score.item()
            else:
                found.append({"score": score.item(), "start": a, "end": b, "answer": text})
    if handle_impossible_answer:
        found.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    found = sorted(found, key=lambda x: x["score"], reverse=True)[:top_k]
    answers = [Answer(x["answer"], float(x["score"]), x["start"], x["end"]) for x in found]
    return answers, float(min_null_score)
