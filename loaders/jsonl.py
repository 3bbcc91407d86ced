"""JSONL corpus: one JSON object per line, ``{"id": ..., "title": ..., "text": ...}``.

A record whose ``text`` is empty (or only whitespace) is an empty document: loading it
removes what the cluster held under its id.

Lines are read as bytes, at most ``max_record_bytes`` at a time (so one huge line
costs bounded memory and ends in an error naming it), and decoded one by one so
that an encoding error is reported with its line number; blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from loaders import rawinput
from loaders.documents import Document, LoadError, field_problem, json_kind
from qasearch.core.settings import Settings

MAX_LINE_BYTES = Settings().max_record_bytes


def read_jsonl(path: Path, max_record_bytes: int = MAX_LINE_BYTES) -> Iterator[Document]:
    with open(path, "rb") as f:
        rawinput.check_start(f.peek(4096)[:4096], str(path))
        number = 0
        while True:
            raw = f.readline(max_record_bytes + 1)
            if not raw:
                return
            number += 1
            where = f"line {number}"
            if len(raw) > max_record_bytes and not raw.endswith(b"\n"):
                raise LoadError(str(path), where, f"line longer than {max_record_bytes} bytes "
                                "(the limit QASEARCH_MAX_RECORD_BYTES); read no further")
            line = rawinput.decode(raw, str(path), where, first=number == 1)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LoadError(str(path), where,
                                f"invalid JSON at column {exc.colno}: {exc.msg}") from None
            yield document_from_record(record, str(path), where)


def document_from_record(record: object, path: str, where: str) -> Document:
    if not isinstance(record, dict):
        raise LoadError(path, where, 'expected an object like {"id", "title", "text"}, '
                        f"got {json_kind(record)}")
    doc_id = record.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise LoadError(path, where, field_problem(record, "id", "a non-empty string"))
    text = record.get("text")
    if not isinstance(text, str):
        raise LoadError(path, where, field_problem(record, "text", 'a string ("" empties the '
                                                   "document)"))
    title = record.get("title", "")
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise LoadError(path, where, field_problem(record, "title", "a string"))
    return Document(doc_id=doc_id, title=title, text=text if text.strip() else "",
                    source=Path(path).name, path=path, location=where)
