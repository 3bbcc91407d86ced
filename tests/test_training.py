"""``qasearch model train`` on a tiny BERT: the loss falls, a killed run resumes to the
same weights, bad input stops before any step, and the result pushes and serves."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qasearch.core import modelpkg, no_answer
from qasearch.core.topology import masters, node_client
from qasearch.training import trainer
from tests import tiny_models
from tests.system import REPO, post, qasearch, roll_back_and_delete, serving, wait_for

QUESTIONS = REPO / "data" / "sample" / "questions.json"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A Hugging Face folder of a tiny random BERT with the MiniLM tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-base")
    torch.manual_seed(3)
    tiny_models.tiny_embedder(seed=3).save_pretrained(folder)
    tiny_models.minilm_tokenizer().save_pretrained(folder)
    return folder


def _config(base: Path, output: Path, **changes) -> trainer.TrainConfig:
    settings = dict(train_files=[str(QUESTIONS)], output=str(output), base=str(base),
                    max_steps=40, learning_rate=2e-3, batch_size=8, max_seq_len=128,
                    doc_stride=32, checkpoint_every=5, threads=1, negatives=0.5, seed=1)
    settings.update(changes)
    return trainer.TrainConfig(**settings)


def _cli(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "qasearch", "model", "train", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def test_training_lowers_the_loss_and_writes_a_manifest(tiny_base, tmp_path):
    threads = torch.get_num_threads()
    try:
        result = trainer.train(_config(tiny_base, tmp_path / "run"), progress=False,
                               log_every=5)
    finally:
        torch.set_num_threads(threads)
    assert result.steps == 40 and result.resumed_from == 0
    assert result.losses[-1] < 0.8 * result.losses[0], result.losses
    manifest = json.loads((tmp_path / "run" / "training.json").read_text())
    assert manifest["data"]["files"] == {
        "questions.json": hashlib.sha256(QUESTIONS.read_bytes()).hexdigest()}
    assert manifest["data"]["features"]["negative_windows"] > 0
    assert manifest["steps"] == 40 and manifest["wall_time_s"] > 0
    assert manifest["settings"]["learning_rate"] == 2e-3
    assert (tmp_path / "run" / "model.safetensors").is_file()
    # Frozen word embeddings are the base's, bit for bit; everything else moved.
    base = load_file(str(tiny_base / "model.safetensors"))
    trained = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert torch.equal(trained["bert.embeddings.word_embeddings.weight"],
                       base["embeddings.word_embeddings.weight"])
    assert not torch.equal(trained["bert.encoder.layer.0.attention.self.query.weight"],
                           base["encoder.layer.0.attention.self.query.weight"])


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_weights(tiny_base, tmp_path):
    run = tmp_path / "killed"
    proc = _cli(str(QUESTIONS), "--output", str(run), "--base", str(tiny_base),
                "--max-steps", "40", "--lr", "2e-3", "--batch-size", "8", "--max-seq-len",
                "128", "--doc-stride", "32", "--checkpoint-every", "5", "--threads", "1",
                "--seed", "1", "--quiet")
    try:
        wait_for(lambda: list((run / "checkpoints").glob("step-0000[1-9]0"))
                 or proc.poll() is not None, timeout=300, what="a checkpoint at step 10+")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    assert not (run / "training.json").exists(), "the run finished before it was killed"
    threads = torch.get_num_threads()
    try:
        resumed = trainer.train(_config(tiny_base, run), progress=False)
        trainer.train(_config(tiny_base, tmp_path / "whole"), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert 10 <= resumed.resumed_from < 40 and resumed.steps == 40
    a = load_file(str(run / "model.safetensors"))
    b = load_file(str(tmp_path / "whole" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


@pytest.mark.parametrize("content, message", [
    ('{"version": "1.1", "articles": []}', 'not SQuAD JSON'),
    ("", "the file is empty"),
    ('{"data": []}', "no questions in this file"),
    (json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "Tides follow the moon.",
      "qas": [{"id": "q1", "question": "What do tides follow?",
               "answers": [{"text": "the sun", "answer_start": 13}]}]}]}]}),
     "answer 'the sun' is not the span of its context at character 13"),
])
def test_bad_training_data_stops_before_any_step(tiny_base, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    proc = _cli(str(bad), "--output", str(tmp_path / "run"), "--base", str(tiny_base))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    assert message in err and str(bad) in err, err
    assert not (tmp_path / "run").exists()


def test_a_trained_folder_pushes_and_serves(system, tiny_base, tmp_path):
    threads = torch.get_num_threads()
    try:
        trainer.train(_config(tiny_base, tmp_path / "run", max_steps=10), progress=False)
    finally:
        torch.set_num_threads(threads)
    first = masters(system)[0]
    node = node_client(first.host, first.port, system)
    before = modelpkg.current_version(node, first.tag)
    # a threshold so low that every answer loses to "no answer": the package carries
    # the folder's rule and the gateway applies it
    no_answer.write_folder(tmp_path / "run", {"threshold": -1e6, "chosen_on": "this test"})
    out = qasearch(system, "model", "push", str(tmp_path / "run"), "--quiet")
    assert "trained=true" in out, out
    assert "no answer when log(null) - log(best span) > -1e+06 (chosen on this test)" in out, out
    version = modelpkg.current_version(node, first.tag)
    assert version != before
    try:
        wait_for(lambda: serving(system, version), timeout=240,
                 what="every worker serving the trained tiny reader")
        started = time.monotonic()
        status, body = 0, {}
        while time.monotonic() - started < 120:
            status, body = post(system, {"search": "Who developed the first vaccine?",
                                         "cache": False})
            if body.get("model", {}).get("version") == version:
                break
            time.sleep(0.5)
        assert status == 200 and body["model"]["version"] == version, body
        assert body["model"]["trained"] is True and "warning" not in body
        best = body["results"][0]
        assert best["sentence"][best["start"]:best["end"]] == best["answer"]
        assert body["model"]["no_answer_threshold"] == -1e6
        assert body["no_answer"] is True and body["null_score"] == best["null_score"]
    finally:
        roll_back_and_delete(system, before, version, timeout=240)
        node.close()
