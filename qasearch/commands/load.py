"""``qasearch load PATH``: documents into passages into the cluster."""

from __future__ import annotations

import argparse
import sys

from redis.exceptions import RedisClusterException, RedisError
from tqdm import tqdm

from loaders.documents import LoadError, plural
from loaders.formats import FORMATS, read_documents
from loaders.splitter import default_tokenizer
from loaders.writer import LoadInterrupted, LoadSummary, write_documents
from qasearch.core.errors import CommandError
from qasearch.core.settings import load_settings
from qasearch.core.topology import cluster_client


def _load(args: argparse.Namespace) -> int:
    if args.max_passage_tokens is not None and args.max_passage_tokens < 8:
        raise CommandError("--max-passage-tokens must be at least 8")
    settings = load_settings().replace(max_passage_tokens=args.max_passage_tokens)
    quiet = args.quiet or not sys.stderr.isatty()
    bar = tqdm(desc="loading", unit=" docs", disable=quiet, dynamic_ncols=True)
    passages = 0

    def progress(docs: int, new_passages: int) -> None:
        nonlocal passages
        passages += new_passages
        bar.update(docs)
        bar.set_postfix(passages=passages)

    try:
        documents = read_documents(args.path, args.format, args.metadata, settings)
        client = cluster_client(settings)
    except LoadError as exc:
        bar.close()
        raise CommandError(exc.report()) from None
    except (RedisError, RedisClusterException) as exc:
        bar.close()
        raise CommandError(f"cannot reach the cluster at {settings.startup_url}: {exc}") from None
    try:
        summary = write_documents(client, settings, documents, default_tokenizer(), progress,
                                  replace_duplicates=args.replace_duplicates)
    except LoadError as exc:
        raise CommandError(exc.report()) from None
    except LoadInterrupted as exc:
        raise CommandError(
            f"cluster error while loading {args.path}: {exc} (loading again is safe: "
            "documents already written are skipped)"
        ) from None
    except (RedisError, RedisClusterException) as exc:
        raise CommandError(
            f"cluster error while loading: {exc} (nothing written; loading again is safe)"
        ) from None
    finally:
        bar.close()
        client.close()
    for line in summary_lines(summary, getattr(documents, "notes", lambda: [])()):
        print(line)
    return 0


def summary_lines(summary: LoadSummary, notes: list[str]) -> list[str]:
    """What the load did: counts of what the cluster holds for the loaded ids afterwards,
    then the reader's notes (CORD-19: metadata used, titles, merged parses)."""
    lines = [
        f"loaded {plural(summary.documents, 'document')}, "
        f"{plural(summary.passages, 'passage')} into "
        f"{plural(len(summary.partitions), 'partition')} in {summary.seconds:.1f}s "
        f"({summary.passages_per_second:.0f} passages/s): {summary.written} written, "
        f"{summary.unchanged} unchanged, {summary.deleted} stale removed"
    ]
    if summary.empty or summary.removed:
        lines.append(f"{plural(summary.empty, 'document')} came in empty; "
                     f"{plural(summary.removed, 'document')} removed with all "
                     "their passages")
    if summary.replaced:
        lines.append(f"{plural(summary.replaced, 'record')} replaced by a later one with "
                     "the same id (--replace-duplicates)")
    return lines + notes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "load", help="load a corpus (JSONL, SQuAD, CORD-19 or text) into the cluster",
        description=(
            "Split documents into passages of bounded token length (text kept exactly) and "
            "write them into their partitions. Loading the same ids again leaves no duplicates; "
            "a document that comes in empty removes what the cluster held for it."
        ),
    )
    parser.add_argument("path", help="file or folder to load")
    parser.add_argument("--format", choices=FORMATS,
                        help="input format (default: guessed from the path)")
    parser.add_argument("--metadata", help="CORD-19 metadata.csv (default: found in the folder)")
    parser.add_argument("--max-passage-tokens", type=int, metavar="N",
                        help="longest passage in tokens (default: settings, 200)")
    parser.add_argument("--replace-duplicates", action="store_true",
                        help="a document id read twice: the later record wins (default: "
                        "an error naming both places)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_load)
