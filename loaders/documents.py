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
    """A malformed input: names the file, the place in it, and what was loaded before.

    Readers raise it with ``path``, ``location`` (``"line 17"``, ``"record data[3]"``,
    or ``""`` when the whole file is at fault) and ``message``; the writer fills in
    ``loaded`` and ``passages_loaded``, the documents and passages it wrote before.
    """

    def __init__(self, path: str, location: str, message: str) -> None:
        super().__init__(f"{path} {location}: {message}" if location else f"{path}: {message}")
        self.path = path
        self.location = location
        self.message = message
        self.loaded = 0
        self.passages_loaded = 0

    def report(self) -> str:
        """One line for the user, e.g. ``c.jsonl line 4: ... (3 documents, 3 passages
        loaded before this line)``."""
        where = f"{self.path} {self.location}" if self.location else self.path
        if not (self.location or self.loaded or self.passages_loaded):
            return f"{where}: {self.message}"  # the input as a whole is refused
        kind = self.location.split(" ", 1)[0] if self.location else ""
        before = f"this {kind}" if kind in ("line", "record") else "this file"
        return (
            f"{where}: {self.message} ({self.loaded} documents, "
            f"{self.passages_loaded} passages loaded before {before})"
        )


def json_kind(value: object) -> str:
    """How a JSON value's type is called in an error message ("a number", "null", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    return "an array" if isinstance(value, list) else "an object"
