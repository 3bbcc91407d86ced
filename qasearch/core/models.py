"""The loaded model: what the worker and the gateway run from a model package.

:meth:`LoadedModel.from_package` turns a :class:`~qasearch.core.modelpkg.ModelPackage`
into ready-to-call TorchScript modules and tokenizers. Nothing is fetched from a
model hub: Redis is the only source. The reader and the embedder were traced
with three inputs (ids, attention mask, token type ids); a reader whose model
takes no token type ids (DistilBERT) ignores the third.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer

from qasearch.core import specials as specials_mod
from qasearch.core.modelpkg import ModelPackage
from qasearch.core.specials import Specials

EMBED_BATCH = 32
WARMUP_CALLS = 2  # TorchScript's profiling executor optimises on the second call


def _load_script(blob: bytes) -> torch.jit.ScriptModule:
    module = torch.jit.load(io.BytesIO(blob), map_location="cpu")
    module.eval()
    return module


def question_ids(tokenizer: Tokenizer, text: str, max_tokens: int | None = None) -> np.ndarray:
    """Reader token ids of a question (no special tokens), at most ``max_tokens``: the
    pipeline never truncates a question, so the reader caps it here."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    return np.asarray(ids[:max_tokens] if max_tokens else ids, dtype=np.int64)


@dataclass(eq=False)
class LoadedModel:
    """A model package in memory, ready to embed and read."""

    version: str
    trained: bool
    manifest: dict
    reader: torch.jit.ScriptModule
    embedder: torch.jit.ScriptModule
    reader_tokenizer: Tokenizer  # no truncation, no padding: passages and questions
    embedder_tokenizer: Tokenizer  # truncates to embedder_max_seq_len
    specials: Specials
    uses_token_type_ids: bool
    reader_max_seq_len: int
    embedder_max_seq_len: int
    embedding_dim: int
    reader_tokenizer_id: str
    embedder_id: str

    @classmethod
    def from_package(cls, pkg: ModelPackage, threads: int = 1) -> LoadedModel:
        """Load both TorchScript modules and tokenizers, then warm them up."""
        # torch's thread count is per process; the worker runs one model at a time.
        torch.set_num_threads(max(1, int(threads)))
        m = pkg.manifest
        reader_cfg, embedder_cfg = m["reader"], m["embedder"]
        reader_tok = specials_mod.plain_copy(Tokenizer.from_str(m["reader_tokenizer"]))
        embedder_tok = specials_mod.plain_copy(Tokenizer.from_str(m["embedder_tokenizer"]))
        embedder_tok.enable_truncation(int(embedder_cfg["max_seq_len"]))
        special_ids = reader_cfg.get("special_ids", {})
        model = cls(
            version=m["version"],
            trained=bool(m["trained"]),
            manifest=m,
            reader=_load_script(pkg.blobs["reader"]),
            embedder=_load_script(pkg.blobs["embedder"]),
            reader_tokenizer=reader_tok,
            embedder_tokenizer=embedder_tok,
            specials=specials_mod.from_tokenizer(
                reader_tok, special_ids.get("cls"), special_ids.get("sep"), special_ids.get("pad")
            ),
            uses_token_type_ids="token_type_ids" in reader_cfg.get("inputs", ["token_type_ids"]),
            reader_max_seq_len=int(reader_cfg["max_seq_len"]),
            embedder_max_seq_len=int(embedder_cfg["max_seq_len"]),
            embedding_dim=int(embedder_cfg["dim"]),
            reader_tokenizer_id=m["ids"]["reader_tokenizer"],
            embedder_id=m["ids"]["embedder"],
        )
        model.warm_up()
        return model

    # --- special tokens -------------------------------------------------------
    @property
    def cls_id(self) -> int | None:
        return self.specials.cls_id

    @property
    def sep_id(self) -> int | None:
        return self.specials.sep_id

    @property
    def pad_id(self) -> int:
        return self.specials.pad_id

    # --- calls ----------------------------------------------------------------
    def warm_up(self) -> None:
        """The first TorchScript calls are slow (profiling, optimising): pay them now."""
        ids = np.full((1, 64), self.pad_id, dtype=np.int64)
        mask = np.ones_like(ids)
        for _ in range(WARMUP_CALLS):
            self.reader_logits(ids, mask, np.zeros_like(ids))
            self.embed(["warm up"])

    def question_ids(self, text: str, max_tokens: int | None = None) -> np.ndarray:
        """Reader token ids of a question (no special tokens), at most ``max_tokens``."""
        return question_ids(self.reader_tokenizer, text, max_tokens)

    def reader_logits(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        token_type_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits, float32 [b, s], for a padded batch."""
        ids = torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int64))
        mask = torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int64))
        if token_type_ids is None or not self.uses_token_type_ids:
            types = torch.zeros_like(ids)
        else:
            types = torch.from_numpy(np.ascontiguousarray(token_type_ids, dtype=np.int64))
        with torch.inference_mode():
            start, end = self.reader(ids, mask, types)
        return start.float().numpy(), end.float().numpy()

    def embed(self, texts: Sequence[str], batch_size: int = EMBED_BATCH) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, float32 [n, dim], in input order."""
        out = np.zeros((len(texts), self.embedding_dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self.embedder_tokenizer.encode_batch(list(texts))
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        pad = int(self.manifest["embedder"].get("pad_id", 0))
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            width = max(1, max(len(encodings[i].ids) for i in rows))
            ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                enc = encodings[i]
                n = len(enc.ids)
                ids[r, :n], mask[r, :n], types[r, :n] = enc.ids, 1, enc.type_ids
            with torch.inference_mode():
                vectors = self.embedder(
                    torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)
                )
            out[rows] = vectors.float().numpy()
        return out
