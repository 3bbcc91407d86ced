"""Pre-tokenise passages into in-database tensors when they arrive.

For each passage the worker stores, in ``keys.tensors(tag, pid)``:

    ids        int32 [n]     reader token ids of the passage, no special tokens
    offsets    int32 [n, 2]  character offsets of those tokens in the passage text
    emb        float32 [d]   the passage embedding (title and text), L2-normalised
    reader_tok               id of the reader tokenizer that produced ids/offsets
    embedder                 id of the embedder that produced emb

so a query never re-tokenises a passage, and a model with another tokenizer or
embedder is detected by comparing the two ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qasearch import codec

EMBED_BATCH = 32


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


def encoding_arrays(encoding) -> tuple[np.ndarray, np.ndarray]:
    """Token ids int32 [n] and character offsets int32 [n, 2] of one tokenizer encoding."""
    return (np.asarray(encoding.ids, dtype=np.int32),
            np.asarray(encoding.offsets, dtype=np.int32).reshape(-1, 2))


def reader_encoding(model, text: str) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`tensorize` stores as ``ids``/``offsets``, made now: for a passage whose
    stored tensors come from another reader tokenizer (a model swap in progress)."""
    return encoding_arrays(model.reader_tokenizer.encode(text, add_special_tokens=False))


def tensor_fields(model, encoding, vector: np.ndarray) -> dict[str, bytes]:
    """The stored fields of one passage: its reader encoding (no special tokens) and vector."""
    ids, offsets = encoding_arrays(encoding)
    return {
        "ids": codec.encode(ids),
        "offsets": codec.encode(offsets),
        "emb": codec.encode(np.asarray(vector, dtype=np.float32)),
        "reader_tok": model.reader_tokenizer_id.encode(),
        "embedder": model.embedder_id.encode(),
    }
