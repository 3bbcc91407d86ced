"""Choosing a reader by format name or by the shape of the path."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from loaders.cord19 import read_cord19
from loaders.documents import Document, LoadError
from loaders.jsonl import read_jsonl
from loaders.plaintext import read_text
from loaders.squad import read_squad
from qasearch.core.settings import Settings

FORMATS = ("jsonl", "squad", "cord19", "text")


SUFFIXES = {".jsonl": "jsonl", ".json": "squad", ".txt": "text"}
# A CORD-19 document file starts with its paper_id; a SQuAD file never has one.
CORD19_START = re.compile(rb'^(\xef\xbb\xbf)?\s*\{\s*"paper_id"\s*:')


def guess_format(path: Path) -> str:
    """The format a path looks like: by extension, or for a folder cord19 when it holds
    JSON files, else text; a .json file starting with ``{"paper_id":`` is one CORD-19
    document."""
    if path.is_dir():
        return "cord19" if any(path.rglob("*.json")) else "text"
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt == "squad":
        try:
            with open(path, "rb") as f:
                if CORD19_START.match(f.read(256)):
                    return "cord19"
        except OSError:
            pass  # the reader names the failure
    if fmt is None:
        known = ", ".join(SUFFIXES)
        raise LoadError(str(path), "", f"cannot tell the format from the name ({known} are "
                        f"known); give it with --format {'|'.join(FORMATS)}")
    return fmt


def read_documents(
    path: str | Path, fmt: str | None = None, metadata: str | Path | None = None,
    settings: Settings | None = None,
) -> Iterator[Document]:
    """Documents of ``path`` in format ``fmt`` (guessed from the path when None); records
    and whole files are bounded by ``settings.max_record_bytes`` / ``max_file_bytes``."""
    settings = settings or Settings()
    path = Path(path)
    if not path.exists():
        raise LoadError(str(path), "", "no such file or folder")
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise LoadError(str(path), "", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "cord19":
        return read_cord19(path, Path(metadata) if metadata else None, settings)
    if fmt in ("jsonl", "squad") and path.is_dir():
        raise LoadError(str(path), "", f"{fmt} expects a file, not a folder")
    if fmt == "jsonl":
        return read_jsonl(path, settings.max_record_bytes)
    if fmt == "squad":
        return read_squad(path, settings.max_file_bytes)
    return read_text(path, settings.max_file_bytes)
