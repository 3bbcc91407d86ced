"""``qasearch synth``: write a labelled synthetic corpus (and questions) for scale tests."""

from __future__ import annotations

import argparse
import time

from loaders import synthetic
from qasearch.core.errors import CommandError


def _synth(args: argparse.Namespace) -> int:
    if args.passages < 1:
        raise CommandError("--passages must be at least 1")
    started = time.perf_counter()
    count = synthetic.write_jsonl(args.output, args.passages, args.seed)
    print(f"wrote {count} SYNTHETIC passages (ids {synthetic.doc_id(0)}..."
          f"{synthetic.doc_id(count - 1)}, seed {args.seed}) to {args.output} "
          f"in {time.perf_counter() - started:.1f}s")
    if args.questions:
        found = synthetic.questions(args.questions, count, args.seed)
        synthetic.write_squad_questions(args.questions_output, found)
        print(f"wrote {len(found)} SYNTHETIC questions (SQuAD format) to {args.questions_output}")
    print("the text is random word-like sentences: for speed and scale tests only")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="write a synthetic corpus of any size (JSONL) for scale tests",
        description=(
            "Write N synthetic passages, one document each, clearly labelled (ids synth-..., "
            "titles 'SYNTHETIC ...'), made of random word-like sentences from a fixed "
            "vocabulary. Deterministic for a given --seed; load it with `qasearch load`."
        ),
    )
    parser.add_argument("--passages", type=int, required=True, help="number of passages")
    parser.add_argument("--output", required=True, help="JSONL file to write")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--questions", type=int, default=0, metavar="N",
                        help="also write N synthetic questions in SQuAD format")
    parser.add_argument("--questions-output", default="synthetic_questions.json",
                        help="where the questions go (default synthetic_questions.json)")
    parser.set_defaults(func=_synth)
