"""Small seeded models for fast tests: random BERTs on the real MiniLM vocabulary.

Nothing here gives answers worth reading; these models exist to test mechanics
(packaging, windows, decoding) quickly and offline.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    BertConfig,
    BertForQuestionAnswering,
    BertModel,
)

from loaders import model_push  # noqa: E402
from qasearch.core.modelpkg import ModelPackage  # noqa: E402

# QA logits of a freshly initialised head are tiny (std ~0.02 weights); a wider
# spread keeps the best spans well apart, so float noise cannot reorder them.
HEAD_SCALE = 40.0


def minilm_tokenizer():
    """The fast tokenizer of the shipped all-MiniLM-L6-v2 (bert-base-uncased vocab)."""
    return AutoTokenizer.from_pretrained(model_push.minilm_path(), local_files_only=True)


def tiny_config(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=512,
    )


def tiny_reader(seed: int = 0) -> BertForQuestionAnswering:
    tokenizer = minilm_tokenizer()
    torch.manual_seed(seed)
    model = BertForQuestionAnswering(tiny_config(len(tokenizer))).eval()
    with torch.no_grad():
        model.qa_outputs.weight.mul_(HEAD_SCALE)
    return model


def tiny_embedder(seed: int = 0) -> BertModel:
    torch.manual_seed(seed + 1000)
    return BertModel(tiny_config(len(minilm_tokenizer())), add_pooling_layer=False).eval()


def tiny_package(seed: int = 0, max_seq_len: int = 128) -> ModelPackage:
    """A complete (untrained) package of a tiny reader and tiny embedder; about 2 MiB."""
    tokenizer = minilm_tokenizer()
    package, _ = model_push.build_package(
        tiny_reader(seed), tokenizer, False, tiny_embedder(seed), tokenizer, 64,
        name=f"tiny-{seed}", source=f"tests/tiny/{seed}", embedder_source="tests/tiny",
        max_seq_len=max_seq_len,
    )
    return package
