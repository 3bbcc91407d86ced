"""The model loader: local checkpoints, the trained flag, trace checks, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from loaders import model_push
from qasearch.models import LoadedModel
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
    package, report = model_push.prepare(str(qa), embedder=str(bare), quantize="int8")
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
