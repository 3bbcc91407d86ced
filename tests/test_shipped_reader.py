"""The reader that ships in models/minilm-squad: it rebuilds to the digest its manifest
names, refuses a damaged copy, and answers the sample questions through a real cluster."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from loaders import shipped_reader
from qasearch.bench.evaluation.metric import score
from qasearch.bench.evaluation.squadfile import read_eval_questions
from qasearch.core import modelpkg
from qasearch.core.topology import masters, node_client
from tests.system import REPO, post, qasearch, roll_back_and_delete, serving, wait_for

QUESTIONS = REPO / "data" / "sample" / "questions.json"


def test_the_shipped_reader_rebuilds_to_the_digest_its_manifest_names():
    manifest = shipped_reader.read_manifest()
    model, tokenizer, _ = shipped_reader.rebuild_model()
    assert shipped_reader.digest(model) == manifest["digest"]
    assert tokenizer.is_fast
    stored = sum(p.stat().st_size for p in shipped_reader.SHIPPED_DIR.iterdir())
    assert stored < 25 * 2**20, f"{stored / 2**20:.1f} MiB in {shipped_reader.SHIPPED_DIR}"
    assert manifest["tensors"]["kept_from_base"] == ["bert.embeddings.word_embeddings.weight"]


def test_a_damaged_copy_is_refused(tmp_path):
    copy = tmp_path / "minilm-squad"
    shutil.copytree(shipped_reader.SHIPPED_DIR, copy)
    tensors = load_file(str(copy / shipped_reader.TENSORS))
    name = "qa_outputs.bias"
    tensors[name] = tensors[name] + torch.tensor(0.001, dtype=tensors[name].dtype)
    save_file(tensors, str(copy / shipped_reader.TENSORS))
    with pytest.raises(shipped_reader.ShippedReaderError, match="digest"):
        shipped_reader.rebuild_model(copy)


def test_the_shipped_reader_answers_most_sample_questions_exactly(system):
    first = masters(system)[0]
    node = node_client(first.host, first.port, system)
    before = modelpkg.current_version(node, first.tag)
    out = qasearch(system, "model", "push", "--quiet")
    assert "trained=true" in out and "ships with qasearch" in out, out
    version = modelpkg.current_version(node, first.tag)
    try:
        wait_for(lambda: serving(system, version), timeout=300,
                 what="every worker serving the shipped reader")
        questions = read_eval_questions(QUESTIONS)
        exact, misses, started = 0, [], time.monotonic()
        for q in questions:
            assert time.monotonic() - started < 900, "the questions took over 15 minutes"
            status, body = post(system, {"search": q.question, "num_results": 1,
                                         "cache": False, "timeout_ms": 60000})
            assert status == 200, body
            assert body["model"]["version"] == version and body["model"]["trained"] is True
            assert "warning" not in body
            answer = body["results"][0]["answer"] if body["results"] else ""
            em, _ = score(answer, q.answers)
            exact += int(em)
            if not em:
                misses.append((q.question, answer, q.answers[0]))
        share = exact / len(questions)
        print(f"shipped reader: {exact} of {len(questions)} sample questions exact ({share:.0%})")
        assert share >= 0.5, f"only {exact}/{len(questions)} exact; misses: {misses[:10]}"
    finally:
        roll_back_and_delete(system, before, version, timeout=300)
        node.close()


def test_a_run_continued_from_the_shipped_reader_packs_with_its_lineage(tmp_path):
    rebuilt = shipped_reader.rebuild(dest=tmp_path / "rebuilt")
    shipped = shipped_reader.read_manifest()
    # a "run" that trained zero steps from the rebuilt reader: its weights are the
    # shipped ones, its base is the rebuilt folder
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(rebuilt / "model.safetensors", run_dir / "model.safetensors")
    run = {"kind": "qasearch reader training run",
           "base": {"path": str(rebuilt), "name": rebuilt.name,
                    "digest": shipped_reader.folder_weights_digest(rebuilt)}}
    packed = shipped_reader.pack(run_dir, run, tmp_path / "packed")
    assert packed["continued_from"]["digest"] == shipped["digest"]
    assert packed["continued_from"]["training"] == shipped["training"]
    model, _, _ = shipped_reader.rebuild_model(tmp_path / "packed")
    assert shipped_reader.digest(model) == packed["digest"] == shipped["digest"]

    (rebuilt / shipped_reader.REBUILT_FROM).unlink()  # now a folder of unknown origin
    with pytest.raises(shipped_reader.ShippedReaderError, match="cannot be packed"):
        shipped_reader.pack(run_dir, run, tmp_path / "refused")


def test_the_model_card_shows_every_run_and_the_no_answer_rule():
    from loaders import model_card

    shipped = shipped_reader.read_manifest()
    first = shipped.get("continued_from", {}).get("training") or shipped["training"]
    second = {**first, "steps": 7,
              "settings": {**first["settings"], "hard_negatives": 0.5, "perturbed": 1.0,
                           "max_steps": 7},
              "data": {**first["data"], "features": {
                  **first["data"]["features"], "perturbed_windows": 9,
                  "perturbed_kinds": {"swap": 5, "antonym": 3, "negation": 1}}}}
    manifest = {**shipped, "training": second,
                "continued_from": {"digest": "0" * 64, "training": first},
                "no_answer": {"threshold": -7.25, "chosen_on": "dev.json (10 questions)",
                              "f1_at_threshold": 55.5, "no_answer_share": 0.4,
                              "two_fold_f1": 54.4}}
    card = model_card.render(manifest)
    assert "**Run 1**, from the MiniLM package" in card
    assert "**Run 2**, from the reader of run 1: 7 steps" in card
    assert "--base var/train/stage1" in card
    assert "--hard-negatives 0.5 --perturbed 1.0 --max-steps 7" in card
    assert "9 windows of perturbed questions" in card and "5 swap" in card
    assert "qasearch model ship var/train/run1 --output var/train/stage1" in card
    assert "above **-7.25**" in card and "F1 54.4" in card


def test_training_from_a_shipped_reader_starts_from_its_rebuilt_folder():
    from qasearch.training import trainer

    base = trainer.base_path(str(shipped_reader.SHIPPED_DIR))
    marker = json.loads((Path(base) / shipped_reader.REBUILT_FROM).read_text())
    assert marker["digest"] == shipped_reader.read_manifest()["digest"]
    assert (Path(base) / "config.json").is_file()
