"""SQuAD v1.1 / v2.0 JSON: every unique paragraph context becomes a document.

The document id is ``<article title>#<paragraph index>``, so loading the same file
twice maps to the same documents. Articles that share a title number their
paragraphs on from the earlier ones, so ids never collide; a context seen before
(SQuAD repeats some) is not loaded twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from loaders.documents import Document, LoadError


def _parse(path: Path) -> object:
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise LoadError(str(path), f"byte {exc.start}", f"not valid UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise LoadError(str(path), where, f"invalid JSON: {exc.msg}") from None


def read_squad(path: Path) -> Iterator[Document]:
    data = _parse(path)
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise LoadError(str(path), "", 'not SQuAD JSON: expected {"data": [...]}')
    seen: set[str] = set()
    next_index: dict[str, int] = {}  # per title: the paragraph number the next article starts at
    for a, article in enumerate(articles):
        where = f"record data[{a}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise LoadError(str(path), where, 'expected an object with "paragraphs": [...]')
        title = article.get("title", "")
        if not isinstance(title, str):
            raise LoadError(str(path), where, '"title" must be a string')
        name = title or "untitled"
        first = next_index.get(name, 0)
        next_index[name] = first + len(article["paragraphs"])
        for p, paragraph in enumerate(article["paragraphs"]):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise LoadError(
                    str(path), f"{where}.paragraphs[{p}]", '"context" must be a non-empty string'
                )
            if context in seen:
                continue
            seen.add(context)
            yield Document(
                doc_id=f"{name}#{first + p}", title=title, text=context, source=Path(path).name,
            )
