"""``qasearch bench`` and ``qasearch synth`` on real parts, with tiny counts.

These tests check that every code path runs and that what it writes is well
formed; they never assert a speed (figures are printed by the benchmark, not
checked here). The side-by-side run uses the session's running system; the scale
mode brings up its own fresh system with a tiny model package.
"""

from __future__ import annotations

import json
import subprocess
import sys

from loaders import synthetic
from loaders.splitter import default_tokenizer, split_document
from qasearch.bench import report
from qasearch.bench.scale import ScaleConfig, run_scale
from qasearch.bench.tuning import TuneConfig, candidates, run_tuning
from qasearch.core.settings import Settings
from tests.helpers import cluster_settings, free_port
from tests.system import qasearch
from tests.tiny_models import tiny_package

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG


def test_synthetic_corpus_is_labelled_deterministic_and_one_passage_per_document(tmp_path):
    docs = list(synthetic.documents(40, seed=3))
    assert [d.doc_id for d in docs[:2]] == ["synth-0000000", "synth-0000001"]
    assert all(d.title.startswith("SYNTHETIC ") for d in docs)
    assert docs == list(synthetic.documents(40, seed=3))  # same seed, same corpus
    assert docs[10:] == list(synthetic.documents(30, seed=3, start=10))  # prefix-stable
    assert docs[0].text != next(synthetic.documents(1, seed=4)).text
    tokenizer = default_tokenizer()
    for d in docs:
        n = len(tokenizer.encode(d.text, add_special_tokens=False).ids)
        assert synthetic.MIN_TOKENS <= n <= synthetic.MAX_TOKENS
        assert len(split_document(d.text, 200, tokenizer)) == 1
    for q in synthetic.questions(5, 40, seed=3):
        assert q.context[q.answer_start : q.answer_start + len(q.answer)] == q.answer
        assert q.question.startswith("What ") and q.question.endswith("?")

    corpus, questions = tmp_path / "synth.jsonl", tmp_path / "q.json"
    out = qasearch(Settings(), "synth", "--passages", "25", "--output", str(corpus),
                   "--seed", "3", "--questions", "4", "--questions-output", str(questions))
    assert "SYNTHETIC" in out
    lines = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert len(lines) == 25 and lines[0]["id"] == "synth-0000000"
    assert lines[5]["text"] == docs[5].text
    squad = json.loads(questions.read_text())
    assert sum(len(p["qas"]) for p in squad["data"][0]["paragraphs"]) == 4


def test_bench_writes_results_report_and_plots_side_by_side(system, tmp_path):
    out = tmp_path / "bench"
    text = qasearch(
        system, "bench", "--queries", "2", "--warmup", "1", "--concurrency", "2",
        "--level-queries", "2", "--padding-questions", "1", "--pipeline-questions", "1",
        "--pipeline-all-questions", "1", "--pipeline-all-limit", "6",
        "--skip-redis-bench", "--eval-limit", "2", "--baseline-k", "1,3",
        "--baseline-questions", "2", "--baseline-seconds", "30", "--output", str(out),
    )
    assert "summary:" in text and "system / floor" in text and "quality: top-1" in text
    assert "K=3: system p50" in text and "twenty-line baseline p50" in text
    results = json.loads((out / "results.json").read_text())
    assert results["latency_c1"]["queries"] == 2 and results["latency_c1"]["errors"] == 0
    assert results["latency_c1"]["cached"] == 0 and results["cache_flag_sent"] is True
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        assert results["latency_c1"][key] > 0
    (level,) = results["throughput"]
    assert level["concurrency"] == 2 and level["completed"] == 2
    assert results["floor_latency"]["questions"] == 2
    assert results["floor_latency"]["windows_per_question"] >= 1
    assert results["floor_throughput"]["questions_per_s"] > 0
    assert results["retrieval_parity"] == {"questions": 1, "agreed": 1}
    assert results["padding"]["questions"] == 1
    pipe = results["pipeline"]
    assert pipe["weights_identical"] is True
    assert pipe["same_passages"]["latency"]["count"] == 1
    assert pipe["every_passage"]["contexts_per_question"] == 6
    ratios = results["ratios"]
    for key in ("latency_system_over_floor_p50", "throughput_system_over_floor",
                "pipeline_same_passages_latency_speedup",
                "pipeline_every_passage_latency_speedup"):
        assert ratios[key] > 0, key
    assert results["model"]["version"] in results["gateway_model_versions"]
    assert results["machine"]["cores"] >= 1 and results["settings"]["top_k"] >= 1
    assert "redis_password" not in results["settings"]
    assert len(results["raw"]["system_c1_ms"]) == 2
    quality = results["quality"]  # the sample questions are not the loaded corpus: no recall
    assert quality["open"]["questions"] == 2 and quality["open"]["recall_at"] is None
    assert 0.0 <= quality["open"]["top1"]["f1"] <= 100.0 and quality["trained"] is False

    fair = results["baseline"]  # section d: the same 2 questions per K on both sides
    assert [row["k"] for row in fair["per_k"]] == [1, 3]
    assert fair["passages"] == results["corpus"]["passages"] and fair["gold_known"] == 2
    assert fair["baseline"]["reader"]["weights_identical"] is True
    for row in fair["per_k"]:
        assert row["questions"] == 2 and row["system_failed"] == 0
        assert row["system"]["passages_read_mean"] >= 1 and row["latency_speedup"] > 0
        assert 0 <= row["system"]["f1"] <= 100 and 0 <= row["baseline"]["f1"] <= 100
        assert row["baseline"]["passages_read_mean"] == row["k"]
    assert [len(k["rows"]) for k in results["raw"]["fair_baseline"]] == [2, 2]

    md = (out / "report.md").read_text()
    for heading in ("## Machine", "## Model", "## a. End to end", "## b. The floor",
                    "## c. The usual alternative", "## Answer quality", "## Settings",
                    "## d. The twenty-line alternative, per K", "untrained"):
        assert heading in md, heading
    assert results["model"]["version"] in md
    for name in ("latency_distribution.png", "throughput.png"):
        assert _is_png(out / name) and f"({name})" in md


def test_scale_mode_measures_a_fresh_system_and_removes_it(tmp_path):
    settings = cluster_settings(tmp_path / "scale").replace(api_port=free_port(),
                                                            api_workers=1)
    config = ScaleConfig(sizes=(30,), live_passages=10, queries=2, warmup=1, seed=1)
    rows = run_scale(settings, tiny_package(max_seq_len=384), config, log=lambda _: None)
    (row,) = rows
    assert row["passages"] == 30 and row["live_passages"] == 10 and row["bulk_passages"] == 20
    assert row["ingest"]["passages"] == 10
    assert row["ingest"]["worker_passages_per_s"] > 0
    assert row["ingest"]["embedder_floor_passages_per_s"] > 0
    assert row["latency"]["count"] == 2 and row["errors"] == 0
    assert row["indexed_passages"] == 30  # bulk tensors and live ones, all in the indexes
    assert row["redis_memory_corpus_mib"] > 0
    assert not (tmp_path / "scale" / "cluster").exists()  # purged, nothing left running

    folder, written = report.write(str(tmp_path / "out"), {"scale": rows, "scale_method": "m"},
                                   {})
    assert json.loads((folder / "results.json").read_text())["scale"][0]["passages"] == 30
    assert "## Scale" in (folder / "report.md").read_text()
    assert _is_png(folder / "scale.png")


def test_tuning_candidates_vary_one_setting_at_a_time():
    base = Settings(max_batch_size=8, max_batch_wait_ms=2.0, torch_threads=1,
                    length_bucket_tokens=16)
    config = TuneConfig(corpus="unused", batch_sizes=(1, 8), waits_ms=(0,), threads=(2,),
                        buckets=(64,))
    rows = candidates(base, config)
    assert rows[0] == {"max_batch_size": 8, "max_batch_wait_ms": 2.0, "torch_threads": 1,
                       "length_bucket_tokens": 16}
    assert len(rows) == 5  # batch 8 is the default already: not measured twice
    for row in rows[1:]:
        assert sum(row[k] != rows[0][k] for k in row) == 1
    assert isinstance(rows[2]["max_batch_wait_ms"], float)


def test_tune_mode_restarts_workers_with_each_setting(tmp_path):
    settings = cluster_settings(tmp_path / "tune").replace(api_port=free_port(),
                                                           api_workers=1)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.doc_id, "title": d.title, "text": d.text})
                              + "\n" for d in synthetic.documents(20, seed=2)))
    config = TuneConfig(corpus=str(corpus), batch_sizes=(1,), waits_ms=(), threads=(),
                        buckets=(), queries=2, warmup=1, concurrency=2, level_queries=2)
    questions = [q.question for q in synthetic.questions(4, 20, seed=2)]
    rows = run_tuning(settings, tiny_package(max_seq_len=384), questions, config,
                      log=lambda _: None)
    assert [r["settings"]["max_batch_size"] for r in rows] == [settings.max_batch_size, 1]
    for row in rows:
        assert row["errors"] == 0 and row["latency_c1"]["count"] == 2
        assert row["throughput"]["completed"] == 2
    assert not (tmp_path / "tune" / "cluster").exists()
    folder, _ = report.write(str(tmp_path / "out"), {"tuning": rows}, {})
    assert "## Tuning" in (folder / "report.md").read_text()


def test_report_is_rendered_again_with_the_chaos_figures(tmp_path):
    report.write(str(tmp_path), {"tuning": [], "settings": {"top_k": 2}}, {})
    chaos = [{"event": "worker-kill", "sent": 40, "answered": 37, "partial": 3, "failed": 0,
              "lost": 0, "recovery_s": 4.2, "event_s": 0.1, "missing": ["p03"], "note": ""}]
    (tmp_path / "chaos.json").write_text(json.dumps(chaos))
    out = qasearch(Settings(), "bench", "--report", str(tmp_path))
    assert "report.md" in out
    md = (tmp_path / "report.md").read_text()
    assert "## Chaos" in md and "| worker-kill | 40 | 37 | 3 | 0 | 0 | 4.2 s |" in md
    assert json.loads((tmp_path / "results.json").read_text())["chaos"] == chaos

    (tmp_path / "chaos.json").write_text("{not json")
    broken = subprocess.run([sys.executable, "-m", "qasearch", "bench", "--report",
                             str(tmp_path)], capture_output=True, text=True)
    assert broken.returncode != 0 and "chaos.json" in broken.stderr
