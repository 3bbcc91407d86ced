"""Plain text: a .txt file or a folder of them; one document per file, titled by its first line.

The document id is the file's stem; files in subfolders keep their relative path
(``sub/name``) so that two ``name.txt`` in different folders stay two documents.
A blank file is an empty document: loading it removes what its id held.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from loaders import rawinput
from loaders.documents import Document, LoadError
from qasearch.core.settings import Settings

MAX_FILE_BYTES = Settings().max_file_bytes


def _doc_id(file: Path, root: Path) -> str:
    if file == root:
        return file.stem
    return file.relative_to(root).with_suffix("").as_posix()


def read_text(path: Path, max_file_bytes: int = MAX_FILE_BYTES) -> Iterator[Document]:
    root = Path(path)
    files = [root] if root.is_file() else sorted(root.rglob("*.txt"))
    if not files:
        raise LoadError(str(path), "", "no .txt files here")
    for file in files:
        text = rawinput.read_whole(file, max_file_bytes)
        if not text.strip():
            yield Document(doc_id=_doc_id(file, root), title="", text="", source=file.name,
                           path=str(file))
            continue
        title = text.strip().splitlines()[0].strip()
        yield Document(doc_id=_doc_id(file, root), title=title, text=text, source=file.name,
                       path=str(file))
