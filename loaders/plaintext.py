"""Plain text: a .txt file or a folder of them; one document per file, titled by its first line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from loaders.documents import Document, LoadError


def read_text(path: Path) -> Iterator[Document]:
    files = [path] if Path(path).is_file() else sorted(Path(path).rglob("*.txt"))
    if not files:
        raise LoadError(str(path), "", "no .txt files here")
    for file in files:
        try:
            text = file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            where, why = f"byte {exc.start}", f"not valid UTF-8 ({exc.reason})"
            raise LoadError(str(file), where, why) from None
        if not text.strip():
            continue
        title = text.strip().splitlines()[0].strip()
        yield Document(doc_id=file.stem, title=title, text=text, source=file.name)
