"""What every corpus reader yields, and how it reports a malformed input."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str
    source: str


class LoadError(Exception):
    """A malformed input: names the file, the place in it, and what was loaded before."""

    def __init__(self, path: str, location: str, message: str) -> None:
        super().__init__(f"{path} {location}: {message}" if location else f"{path}: {message}")
        self.path = path
        self.location = location
        self.message = message
        self.documents_loaded = 0
        self.passages_loaded = 0

    def report(self) -> str:
        where = f"{self.path} {self.location}" if self.location else self.path
        return (
            f"{where}: {self.message} ({self.documents_loaded} documents, "
            f"{self.passages_loaded} passages loaded before this)"
        )
