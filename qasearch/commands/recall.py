"""``qasearch recall``: retrieval recall against passages read, for choosing ``top_k``."""

from __future__ import annotations

import argparse

from qasearch.bench.recall import measure_recall
from qasearch.commands.bench import DEFAULT_QUESTIONS
from qasearch.core.questions import read_squad_questions
from qasearch.core.settings import load_settings


def _recall(args: argparse.Namespace) -> int:
    ks = [int(k) for k in args.top_k.split(",")]
    points, used = measure_recall(load_settings(), read_squad_questions(args.questions), ks)
    print(f"retrieval recall over {used} questions whose passage is loaded")
    print("  top_k  recall  passages read per question")
    for p in points:
        print(f"  {p.top_k:>5}  {p.recall:>6.1%}  {p.passages_read:>6.1f}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recall", help="retrieval recall at several top_k (how the default is chosen)",
        description="Share of sample questions whose answer passage is among the top_k "
        "passages the two phases read (dense and BM25 candidates of every node, fused).",
    )
    parser.add_argument("--questions", default=str(DEFAULT_QUESTIONS))
    parser.add_argument("--top-k", default="1,2,3,5,10,20", help="comma-separated k values")
    parser.set_defaults(func=_recall)
