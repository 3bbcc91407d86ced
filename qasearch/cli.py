"""The ``qasearch`` command line: one entry point, a subcommand per concern.

Each subcommand lives in ``qasearch/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from qasearch.core.errors import CommandError

__all__ = ["CommandError", "main"]

COMMAND_MODULES = (
    "cluster", "load", "model", "workers", "serve", "ask", "bench", "stats", "redisbench",
    "recall", "synth", "prometheus_config", "chaos", "eval",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qasearch",
        description="Extractive question answering served from a Redis Cluster.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"qasearch.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"qasearch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
