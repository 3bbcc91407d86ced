"""CORD-19: a folder of document JSON files (``paper_id``, ``metadata.title``,
``abstract`` and ``body_text`` paragraphs) plus ``metadata.csv`` for titles.

A document's text is its abstract and body paragraphs in order, joined by blank
lines, so every paragraph becomes at least one passage.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from loaders import rawinput
from loaders.documents import Document, LoadError, json_kind
from qasearch.settings import Settings

DEFAULTS = Settings()


def read_metadata_titles(
    csv_path: Path, max_field_bytes: int = DEFAULTS.max_record_bytes
) -> dict[str, str]:
    """Paper id -> title from CORD-19's metadata.csv: each ``;``-separated ``sha`` (the id of
    a PDF parse), ``pmcid`` (the id of a PMC parse) and ``cord_uid`` map to the row's title.

    Fields are bounded by ``max_field_bytes`` (metadata.csv carries whole abstracts,
    longer than the csv module's default limit, but a runaway quote must not eat memory)."""
    titles: dict[str, str] = {}
    csv.field_size_limit(max_field_bytes)
    try:
        with open(csv_path, "rb") as raw:
            rawinput.check_start(raw.read(4096), str(csv_path))
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            for row in reader:
                title = (row.get("title") or "").strip()
                if not title:
                    continue
                ids = (row.get("sha") or "").split(";") + [
                    row.get("pmcid") or "", row.get("cord_uid") or ""]
                for paper_id in ids:
                    if paper_id.strip():
                        titles[paper_id.strip()] = title
    except OSError as exc:
        raise LoadError(str(csv_path), "", f"cannot read metadata CSV: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise LoadError(str(csv_path), f"near line {reader.line_num + 1}",
                        f"metadata CSV is not valid UTF-8 ({exc.reason}); "
                        f"{rawinput.CONVERT_HINT}") from None
    except csv.Error as exc:
        where = f"line {reader.line_num}"
        raise LoadError(str(csv_path), where, f"unreadable metadata CSV: {exc}") from None
    return titles


def _paragraphs(doc: dict, field: str, path: Path) -> list[str]:
    items = doc.get(field, [])
    if not isinstance(items, list):
        raise LoadError(str(path), f'field "{field}"',
                        f"must be a list of paragraphs, got {json_kind(items)}")
    texts = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise LoadError(str(path), f"{field}[{i}]",
                            f'expected an object with "text", got {json_kind(item)}')
        text = item.get("text")
        if not isinstance(text, str):
            raise LoadError(str(path), f"{field}[{i}]",
                            f'"text" must be a string, got {json_kind(text)}')
        if text.strip():
            texts.append(text.strip())
    return texts


def read_cord19(
    folder: Path, metadata: Path | None = None, settings: Settings = DEFAULTS
) -> Iterator[Document]:
    """Documents of every ``*.json`` under ``folder`` (sorted by path); titles missing from
    the JSON come from ``metadata`` or else the first ``metadata.csv`` under ``folder``.

    The metadata is read, and refused if malformed, before any document; a malformed
    document file stops the load there (the files before it are loaded and reported)."""
    files = sorted(p for p in Path(folder).rglob("*.json") if p.is_file())
    if not files:
        raise LoadError(str(folder), "", "no CORD-19 document JSON files in this folder")
    csv_path = metadata or next(iter(sorted(Path(folder).rglob("metadata.csv"))), None)
    titles = read_metadata_titles(csv_path, settings.max_record_bytes) if csv_path else {}
    return _documents(files, titles, settings.max_file_bytes)


def _documents(files: list[Path], titles: dict[str, str], max_file_bytes: int
               ) -> Iterator[Document]:
    for path in files:
        text = rawinput.read_whole(path, max_file_bytes)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoadError(str(path), f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from None
        if not isinstance(doc, dict):
            raise LoadError(str(path), "", f"expected a JSON object, got {json_kind(doc)}")
        paper_id = doc.get("paper_id")
        if not isinstance(paper_id, str) or not paper_id:
            raise LoadError(str(path), 'field "paper_id"',
                            f"must be a non-empty string, got {json_kind(paper_id)}")
        if "body_text" not in doc:
            raise LoadError(str(path), 'field "body_text"', "missing")
        paragraphs = _paragraphs(doc, "abstract", path) + _paragraphs(doc, "body_text", path)
        if not paragraphs:
            continue  # a paper with no text has no passages
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        title = meta.get("title") if isinstance(meta.get("title"), str) else ""
        yield Document(
            doc_id=paper_id, title=title.strip() or titles.get(paper_id, ""),
            text="\n\n".join(paragraphs), source=path.name,
        )
