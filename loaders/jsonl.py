"""JSONL corpus: one JSON object per line, ``{"id": ..., "title": ..., "text": ...}``.

Lines are read as bytes and decoded one by one so that an encoding error is
reported with its line number; blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from loaders.documents import Document, LoadError

MAX_LINE_BYTES = 16 * 1024 * 1024


def read_jsonl(path: Path) -> Iterator[Document]:
    with open(path, "rb") as f:
        number = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            where = f"line {number}"
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise LoadError(str(path), where, f"line longer than {MAX_LINE_BYTES} bytes")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LoadError(str(path), where, f"not valid UTF-8 ({exc.reason})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LoadError(str(path), where, f"invalid JSON: {exc.msg}") from None
            yield document_from_record(record, str(path), where)


def document_from_record(record: object, path: str, where: str) -> Document:
    if not isinstance(record, dict):
        raise LoadError(path, where, 'expected an object like {"id", "title", "text"}')
    doc_id = record.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise LoadError(path, where, '"id" must be a non-empty string')
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise LoadError(path, where, '"text" must be a non-empty string')
    title = record.get("title", "")
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise LoadError(path, where, '"title" must be a string')
    return Document(doc_id=doc_id, title=title, text=text, source=Path(path).name)
