"""SQuAD v1.1 / v2.0 JSON: every unique paragraph context becomes a document.

The document id is ``<article title>#<paragraph index>``, so loading the same file
twice maps to the same documents. Articles that share a title number their
paragraphs on from the earlier ones, so ids never collide; a context seen before
(SQuAD repeats some) is not loaded twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loaders import rawinput
from loaders.documents import Document, LoadError, field_problem, json_kind
from qasearch.core.settings import Settings

MAX_FILE_BYTES = Settings().max_file_bytes


def _parse(path: Path, max_file_bytes: int) -> object:
    text = rawinput.read_whole(Path(path), max_file_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise LoadError(str(path), where, f"invalid JSON: {exc.msg}") from None


def read_squad(path: Path, max_file_bytes: int = MAX_FILE_BYTES) -> Iterator[Document]:
    """The file's documents; the whole file is checked before the first one is yielded, so
    a malformed SQuAD file loads nothing at all."""
    return iter([
        Document(doc_id=p.doc_id, title=p.title, text=p.context, source=Path(path).name,
                 path=str(path), location=p.location)
        for p in _paragraphs(path, _parse(path, max_file_bytes)) if not p.repeat
    ])


@dataclass(frozen=True)
class SquadParagraph:
    """One paragraph of the file and the document id it is loaded under."""

    doc_id: str  # for a repeated context: the id of its first occurrence
    title: str
    context: str
    qas: object  # the paragraph's "qas" as found (checked by whoever reads questions)
    repeat: bool
    location: str  # where in the file, for messages ("record data[3].paragraphs[2]")


def read_paragraphs(path: Path, max_file_bytes: int = MAX_FILE_BYTES) -> list[SquadParagraph]:
    """Every paragraph (repeats included) with the document id :func:`read_squad` gives
    its context, so an evaluation can tell which loaded document holds a question."""
    return list(_paragraphs(path, _parse(path, max_file_bytes)))


def _paragraphs(path: Path, data: object) -> Iterator[SquadParagraph]:
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        hint = ""
        if isinstance(data, dict) and "paper_id" in data:
            hint = ("; it looks like one CORD-19 document: load it with --format cord19 (a "
                    "file, or a folder of pdf_json/ and pmc_json/ files with metadata.csv)")
        raise LoadError(str(path), "", f'not SQuAD JSON: expected {{"data": [...]}}{hint}')
    seen: dict[str, str] = {}  # context -> the doc id it was loaded under
    next_index: dict[str, int] = {}  # per title: the paragraph number the next article starts at
    for a, article in enumerate(articles):
        where = f"record data[{a}]"
        if not isinstance(article, dict):
            got = json_kind(article)
            raise LoadError(str(path), where, f'expected an object with "paragraphs": [...], '
                            f"got {got}")
        if not isinstance(article.get("paragraphs"), list):
            raise LoadError(str(path), where, field_problem(article, "paragraphs", "an array"))
        title = article.get("title", "")
        if not isinstance(title, str):
            raise LoadError(str(path), where, f'"title" must be a string, got {json_kind(title)}')
        name = title or "untitled"
        first = next_index.get(name, 0)
        next_index[name] = first + len(article["paragraphs"])
        for p, paragraph in enumerate(article["paragraphs"]):
            if not isinstance(paragraph, dict):
                raise LoadError(str(path), f"{where}.paragraphs[{p}]",
                                f'expected an object with "context", got {json_kind(paragraph)}')
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise LoadError(str(path), f"{where}.paragraphs[{p}]",
                                field_problem(paragraph, "context", "a non-empty string"))
            repeat = context in seen
            doc_id = seen.setdefault(context, f"{name}#{first + p}")
            yield SquadParagraph(doc_id, title, context, paragraph.get("qas", []), repeat,
                                 f"{where}.paragraphs[{p}]")
