"""Pre-tokenise passages into in-database tensors when they arrive.

For each passage the worker stores, in ``keys.tensors(tag, pid)``:

    ids        int32 [n]     reader token ids of the passage, no special tokens
    offsets    int32 [n, 2]  character offsets of those tokens in the passage text
    words      int32 [n]     the tokenizer's word index of each token (-1: none)
    emb        float32 [d]   the passage embedding (title and text), L2-normalised
    reader_tok               what produced ids/offsets/words: :func:`made_by`
    embedder                 id of the embedder that produced emb

so a query never re-tokenises a passage, and a model with another tokenizer or
embedder is detected by comparing the two ids. ``reader_tok`` also names the
layout of the reader fields (:data:`LAYOUT`): tensors stored by an older release
(ids and offsets only) read as made by another tokenizer, so the worker's
reconcile remakes them and a request meeting one tokenises the passage itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gears.reader import PassageTokens
from qasearch.core import codec

EMBED_BATCH = 32
# The reader fields' layout; a new one marks every stored passage as stale. 2: words added.
LAYOUT = 2
READER_FIELDS = ("ids", "offsets", "words")


@dataclass(frozen=True)
class PassageText:
    pid: str
    text: str
    title: str


def embedding_input(title: str, text: str) -> str:
    """What the embedder sees of a passage: its title gives context to later paragraphs."""
    return f"{title}\n{text}" if title else text


def tensorize(model, passages: Sequence[PassageText]) -> list[tuple[dict[str, bytes], np.ndarray]]:
    """Tensor fields for each passage (ready for HSET) and its embedding vector."""
    out: list[tuple[dict[str, bytes], np.ndarray]] = []
    for start in range(0, len(passages), EMBED_BATCH):
        chunk = passages[start : start + EMBED_BATCH]
        vectors = model.embed([embedding_input(p.title, p.text) for p in chunk])
        encodings = model.reader_tokenizer.encode_batch(
            [p.text for p in chunk], add_special_tokens=False
        )
        for enc, vector in zip(encodings, vectors):
            out.append((tensor_fields(model, enc, vector), vector))
    return out


def made_by(model) -> bytes:
    """The ``reader_tok`` value of tensors this code stores for ``model``."""
    return f"{model.reader_tokenizer_id}/{LAYOUT}".encode()


def passage_tokens(model, text: str) -> PassageTokens:
    """What :func:`tensorize` stores as the reader fields, made now: for a passage whose
    stored tensors come from another reader tokenizer (a model swap in progress)."""
    return PassageTokens.from_encoding(
        model.reader_tokenizer.encode(text, add_special_tokens=False))


def stored_tokens(ids: bytes, offsets: bytes, words: bytes) -> PassageTokens:
    """The reader fields (:data:`READER_FIELDS`, as HMGET returns them) decoded."""
    return PassageTokens(codec.decode(ids), codec.decode(offsets), codec.decode(words))


def tensor_fields(model, encoding, vector: np.ndarray) -> dict[str, bytes]:
    """The stored fields of one passage: its reader encoding (no special tokens) and vector."""
    tokens = PassageTokens.from_encoding(encoding)
    return {
        "ids": codec.encode(tokens.ids),
        "offsets": codec.encode(tokens.offsets),
        "words": codec.encode(tokens.words),
        "emb": codec.encode(np.asarray(vector, dtype=np.float32)),
        "reader_tok": made_by(model),
        "embedder": model.embedder_id.encode(),
    }
