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

from loaders.documents import Document, LoadError

# metadata.csv carries whole abstracts, longer than the csv module's default field limit.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


def read_metadata_titles(csv_path: Path) -> dict[str, str]:
    """Paper id -> title from CORD-19's metadata.csv: each ``;``-separated ``sha`` (the id of
    a PDF parse), ``pmcid`` (the id of a PMC parse) and ``cord_uid`` map to the row's title."""
    titles: dict[str, str] = {}
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
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
        raise LoadError(str(csv_path), "", f"metadata CSV is not valid UTF-8 ({exc.reason})") \
            from None
    except csv.Error as exc:
        where = f"line {reader.line_num}"
        raise LoadError(str(csv_path), where, f"unreadable metadata CSV: {exc}") from None
    return titles


def _paragraphs(doc: dict, field: str, path: Path) -> list[str]:
    items = doc.get(field, [])
    if not isinstance(items, list):
        raise LoadError(str(path), f'field "{field}"', "must be a list of paragraphs")
    texts = []
    for i, item in enumerate(items):
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, str):
            raise LoadError(str(path), f"{field}[{i}]", '"text" must be a string')
        if text.strip():
            texts.append(text.strip())
    return texts


def read_cord19(folder: Path, metadata: Path | None = None) -> Iterator[Document]:
    """Documents of every ``*.json`` under ``folder`` (sorted by path); titles missing from
    the JSON come from ``metadata`` or else the first ``metadata.csv`` under ``folder``."""
    files = sorted(p for p in Path(folder).rglob("*.json") if p.is_file())
    if not files:
        raise LoadError(str(folder), "", "no CORD-19 document JSON files in this folder")
    csv_path = metadata or next(iter(sorted(Path(folder).rglob("metadata.csv"))), None)
    titles = read_metadata_titles(csv_path) if csv_path else {}
    for path in files:
        try:
            doc = json.loads(path.read_bytes().decode("utf-8"))
        except OSError as exc:
            raise LoadError(str(path), "", f"cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise LoadError(str(path), "", f"not valid UTF-8 ({exc.reason})") from None
        except json.JSONDecodeError as exc:
            raise LoadError(str(path), f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from None
        if not isinstance(doc, dict):
            raise LoadError(str(path), "", "expected a JSON object")
        paper_id = doc.get("paper_id")
        if not isinstance(paper_id, str) or not paper_id:
            raise LoadError(str(path), 'field "paper_id"', "must be a non-empty string")
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
