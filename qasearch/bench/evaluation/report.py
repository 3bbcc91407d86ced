"""results.json and report.md of ``qasearch eval``, and the quality section of a report.

The folder conventions are ``qasearch bench``'s (:func:`qasearch.bench.report.
resolve_output`): ``results/<timestamp>`` by default, or ``--output DIR``, or a
``.json`` path whose folder receives report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from qasearch.bench.report import resolve_output


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f} %"


def _scores(part: dict | None) -> str:
    if not part or not part.get("questions"):
        return "– | – | 0"
    return f"{_pct(part['exact_match'])} | {_pct(part['f1'])} | {part['questions']}"


def quality_lines(quality: dict) -> list[str]:
    """Markdown of an evaluation's figures (``{"reader": ..., "open": ...}``)."""
    lines = ["## Answer quality", ""]
    if quality.get("file"):
        lines += [f"Questions of `{quality['file']}`, official SQuAD normalisation "
                  "(EM and F1 in %, best over the reference answers).", ""]
    if quality.get("trained") is False:
        lines += ["**The reader's QA head is untrained: these scores are noise.**", ""]
    reader = quality.get("reader")
    if reader:
        lines += [
            f"Reader only (each question against its own paragraph; {reader['reader']}, "
            f"max_seq_len {reader['max_seq_len']}, stride {reader['doc_stride']}, "
            f"null answer {'on' if reader['handle_impossible'] else 'off'}; "
            f"{reader['ms_per_question']:.0f} ms per question):", "",
            "| questions | EM | F1 | n |", "|---|---|---|---|",
            f"| all | {_scores(reader)} |",
            f"| answerable | {_scores(reader.get('answerable'))} |",
            f"| unanswerable | {_scores(reader.get('unanswerable'))} |", "",
        ]
        if reader.get("no_answer_threshold") is not None:
            lines += [f"\"No answer\" said at the reader's threshold "
                      f"{reader['no_answer_threshold']:g}.", ""]
        lines += no_answer_lines(reader.get("calibration"), "Reader only")
    open_ = quality.get("open")
    if open_:
        recall = open_.get("recall_at") or {}
        lat = open_["latency"]
        lines += [
            "Open domain (every question through POST /qasearch, caches off; top answer):",
            "", "| questions | EM | F1 | n |", "|---|---|---|---|",
            f"| all | {_scores(open_['top1'])} |",
            f"| answerable | {_scores(open_['top1_answerable'])} |",
            f"| unanswerable | {_scores(open_['top1_unanswerable'])} |", "",
            "| figure | value |", "|---|---|",
            f"| a gold answer among the top 5 (answerable) | {_share(open_['gold_in_top5'])} |",
            *[f"| gold paragraph among the {k} most similar passages read | {_share(v)} |"
              for k, v in recall.items() if k != "all"],
            f"| gold paragraph among all passages read | {_share(recall.get('all'))} |",
            f"| passages read per question | {open_['passages_read_mean']:.1f} |",
            f"| responses saying no_answer | {_share(open_['no_answer_share'])} |",
            f"| latency p50 / p95 | {lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} ms |", "",
        ]
        lines += no_answer_lines(open_.get("no_answer"), "Open domain")
        lines += _sweep_lines(open_)
    return lines


def no_answer_lines(table: dict | None, what: str) -> list[str]:
    """The no-answer thresholds side by side (:mod:`qasearch.bench.evaluation.calibration`)."""
    if not table:
        return []
    rows = [("the pipeline's (0)", table["at_pipeline_threshold"])]
    if "at_served_threshold" in table:
        rows.append(("served", table["at_served_threshold"]))
    rows.append(("best on these questions", table["at_threshold"]))
    lines = [f"{what}, saying \"no answer\" when log(null) - log(best span) is above a "
             "threshold:", "",
             "| threshold | value | EM | F1 | answerable F1 | unanswerable F1 | no answer |",
             "|---|---|---|---|---|---|---|"]
    for name, at in rows:
        lines.append(f"| {name} | {at['threshold']:g} | {_pct(at['all']['exact_match'])} | "
                     f"{_pct(at['all']['f1'])} | {_pct(at['answerable']['f1'])} | "
                     f"{_pct(at['unanswerable']['f1'])} | {_share(at['no_answer_share'])} |")
    fold = table.get("two_fold") or {}
    if fold:
        lines += ["", f"Chosen on half of the paragraphs and scored on the other half (both "
                  f"ways; thresholds {fold['thresholds'][0]:g} and {fold['thresholds'][1]:g}): "
                  f"EM {_pct(fold['exact_match'])}, F1 {_pct(fold['f1'])}."]
    return lines + [""]


def _grid(title: str, corner: str, table: dict[str, dict], columns: str, cell) -> list[str]:
    """A markdown table: one row per key of ``table``, one column per key of its rows."""
    if not table:
        return []
    cols = list(next(iter(table.values())))
    return [title, "", f"| {corner} | " + " | ".join(columns.format(c) for c in cols) + " |",
            "|---|" + "---|" * len(cols),
            *[f"| {name} | " + " | ".join(cell(row[c]) for c in cols) + " |"
              for name, row in table.items()], ""]


def _sweep_lines(open_: dict) -> list[str]:
    """Recall of each retrieval ranking, and F1 of reading fewer passages (eval sweep)."""
    return [
        *_grid("Gold paragraph among the top k of each retrieval ranking (phase 1's "
               "candidates):", "ranking", open_.get("retrieval_recall") or {}, "@{}", _share),
        *_grid("Top-1 F1 reading the best K passages, answer score = (1 - mu) x retrieval "
               "+ mu x reader:", "K", open_.get("read_sweep") or {}, "mu {}",
               lambda v: f"{v['f1']:.1f}"),
    ]


def write(output: str | None, results: dict) -> tuple[Path, list[Path]]:
    """Write results.json (figures and per-question rows) and report.md."""
    folder, json_path = resolve_output(output)
    folder.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, default=str))
    summary = {k: v for k, v in results.items() if k != "rows"}
    lines = [f"# qasearch eval {results.get('created', '')}", ""]
    lines += quality_lines(summary)
    lines += ["Per-question predictions are in results.json (`rows`).", ""]
    report = folder / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return folder, [json_path, report]
