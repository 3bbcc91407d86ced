"""The model loader: local checkpoints, the trained flag, trace checks, clear refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from loaders import model_push
from qasearch.bench import agreement
from qasearch.core import modelpkg
from qasearch.core.models import LoadedModel
from qasearch.core.settings import to_environ
from qasearch.core.topology import masters, node_client
from tests import tiny_models


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny QA checkpoint and a tiny encoder-only checkpoint (no QA head), saved locally."""
    root = tmp_path_factory.mktemp("checkpoints")
    tokenizer = tiny_models.minilm_tokenizer()
    qa, bare = root / "tiny-qa", root / "tiny-bare"
    tiny_models.tiny_reader(seed=3).save_pretrained(qa)
    tokenizer.save_pretrained(qa)
    tiny_models.tiny_embedder(seed=3).save_pretrained(bare)
    tokenizer.save_pretrained(bare)
    return qa, bare


def test_local_qa_checkpoint_is_trained(folders):
    qa, bare = folders
    package, report = model_push.prepare(str(qa), embedder=str(bare), max_seq_len=256)
    assert package.trained is True and not report.warnings
    assert package.manifest["reader"]["max_seq_len"] == 256
    assert package.manifest["reader"]["inputs"] == ["input_ids", "attention_mask",
                                                    "token_type_ids"]
    assert report.trace_diff["reader"] < model_push.TRACE_TOLERANCE
    again, _ = model_push.prepare(str(qa), embedder=str(bare), max_seq_len=256)
    assert again.version == package.version
    model = LoadedModel.from_package(package)
    assert model.embed(["a", "b c"]).shape == (2, 64)


def test_checkpoint_without_qa_head_is_marked_untrained(folders, capsys):
    _, bare = folders
    package, report = model_push.prepare(str(bare), embedder=str(bare))
    assert package.trained is False
    model_push.warn(report)
    assert "UNTRAINED" in capsys.readouterr().err


def test_quantized_reader_is_checked_and_labelled(folders):
    qa, bare = folders
    package, report = model_push.prepare(str(qa), embedder=str(bare), quantize="int8",
                                         score_quantized=agreement.quantized_quality)
    assert package.manifest["reader"]["quantized"] == "int8"
    # both readers scored on the same 78 sample questions (noise: mechanics only)
    quality = report.quality
    assert quality.questions == 78 and 0.0 <= quality.same_span <= 1.0
    for scores in (quality.fp32, quality.quantized):
        assert 0.0 <= scores["exact_match"] <= scores["f1"] <= 100.0
    model = LoadedModel.from_package(package)
    start, end = model.reader_logits(np.full((2, 40), 1000), np.ones((2, 40), dtype=np.int64))
    assert start.shape == end.shape == (2, 40)


class ShapeBranch(nn.Module):
    """Takes a Python branch on the sequence length: a trace freezes it."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor,
                types: torch.Tensor) -> torch.Tensor:
        x = ids.float() * mask
        if ids.shape[1] > 100:
            return x * 2.0
        return x


def test_a_trace_that_differs_from_eager_is_refused():
    with pytest.raises(model_push.ModelPushError, match="refusing the traced"):
        model_push.trace_checked(ShapeBranch(), vocab_size=30522, pad_id=0, what="reader")


def test_unreachable_sources_fail_fast_and_clearly(tmp_path):
    with pytest.raises(model_push.ModelPushError, match="no such folder"):
        model_push.prepare(str(tmp_path / "missing"))
    with pytest.raises(model_push.ModelPushError, match="offline-minilm"):
        model_push.prepare(None)


# --- refusals: what is not an extractive-QA reader never reaches the cluster --------


def _tiny_bert_config():
    return tiny_models.tiny_config(len(tiny_models.minilm_tokenizer()))


def _save(folder, model, tokenizer=None):
    model.save_pretrained(folder)
    (tokenizer or tiny_models.minilm_tokenizer()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def refused_folders(tmp_path_factory):
    from transformers import (
        BertForQuestionAnswering,
        BertForSequenceClassification,
        CTRLTokenizer,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    root = tmp_path_factory.mktemp("refused")
    vocab, merges = root / "vocab.json", root / "merges.txt"
    vocab.write_text('{"a": 0, "b": 1, "ab": 2, "<unk>": 3}')
    merges.write_text("#version: 0.2\na b\n")
    return {
        "classifier": _save(root / "classifier",
                            BertForSequenceClassification(_tiny_bert_config())),
        "causal": _save(root / "causal", GPT2LMHeadModel(GPT2Config(
            vocab_size=1000, n_embd=32, n_layer=1, n_head=2, n_positions=128))),
        "seq2seq": _save(root / "seq2seq", T5ForConditionalGeneration(T5Config(
            vocab_size=1000, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2))),
        "slow-tokenizer": _save(root / "slow-tokenizer",
                                BertForQuestionAnswering(_tiny_bert_config()),
                                CTRLTokenizer(str(vocab), str(merges))),
    }


def _versions(settings) -> list[list[str]]:
    out = []
    for m in masters(settings):
        client = node_client(m.host, m.port, settings)
        try:
            out.append(modelpkg.list_versions(client, m.tag))
        finally:
            client.close()
    return out


@pytest.mark.parametrize("kind, message", [
    ("classifier", "is a classifier (BertForSequenceClassification)"),
    ("slow-tokenizer", "has no fast tokenizer"),
])
def test_push_refuses_before_storing_anything(cluster, refused_folders, kind, message):
    before = _versions(cluster)
    proc = subprocess.run(
        [sys.executable, "-m", "qasearch", "model", "push", str(refused_folders[kind]),
         "--embedder", str(refused_folders["classifier"]), "--quiet"],
        env={**os.environ, **to_environ(cluster), "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _versions(cluster) == before  # nothing stored on any master


@pytest.mark.parametrize("kind, message", [
    ("causal", "is a causal (generative) language model"),
    ("seq2seq", "is a sequence-to-sequence model"),
])
def test_generative_checkpoints_are_refused(refused_folders, kind, message):
    with pytest.raises(model_push.ModelPushError, match=re.escape(message)):
        model_push.prepare(str(refused_folders[kind]),
                           embedder=str(refused_folders["classifier"]))


class NotTraceable(nn.Module):
    """Returns a string: TorchScript cannot trace it."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> str:
        return "span"


def test_a_model_that_does_not_trace_is_refused():
    with pytest.raises(model_push.ModelPushError, match="does not trace to TorchScript"):
        model_push.trace_checked(NotTraceable(), vocab_size=30522, pad_id=0, what="reader")
