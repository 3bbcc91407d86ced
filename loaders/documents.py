"""What every corpus reader yields, and how it reports a malformed input."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Document:
    """One document of a load. ``text`` empty means "this id has no passages now": the
    writer then removes whatever the cluster held for it.

    ``path`` and ``location`` say where it was read (for messages naming a duplicate);
    ``sections`` are ``(char offset, section title)`` of the paragraphs that start a
    section, in order, so each passage can carry the title of the section it is in."""

    doc_id: str
    title: str
    text: str
    source: str
    path: str = ""
    location: str = ""
    sections: tuple[tuple[int, str], ...] = ()

    @property
    def origin(self) -> str:
        return f"{self.path} {self.location}".strip() or self.source

    @cached_property
    def _section_starts(self) -> list[int]:
        return [start for start, _ in self.sections]

    def section_at(self, char_start: int) -> str:
        """The section title of the paragraph holding ``char_start`` ("" when none)."""
        i = bisect.bisect_right(self._section_starts, char_start) - 1
        return self.sections[i][1] if i >= 0 else ""


class LoadError(Exception):
    """A malformed input: names the file, the place in it, and what was loaded before.

    Readers raise it with ``path``, ``location`` (``"line 17"``, ``"record data[3]"``,
    or ``""`` when the whole file is at fault) and ``message``; the writer fills in
    ``loaded`` and ``passages_loaded``, the documents and passages it wrote before.
    ``before`` is what those counts came before: ``"line"``/``"record"`` by default when
    the location is one, else ``"file"`` (a CORD-19 file is one document, so its line
    numbers are no boundary between documents).
    """

    def __init__(self, path: str, location: str, message: str, before: str = "") -> None:
        super().__init__(f"{path} {location}: {message}" if location else f"{path}: {message}")
        self.path = path
        self.location = location
        self.message = message
        self.loaded = 0
        self.passages_loaded = 0
        kind = location.split(" ", 1)[0] if location else ""
        self.before = before or (kind if kind in ("line", "record") else "file")

    def report(self) -> str:
        """One line for the user, e.g. ``c.jsonl line 4: ... (3 documents, 3 passages
        loaded before this line)``."""
        where = f"{self.path} {self.location}" if self.location else self.path
        if not (self.location or self.loaded or self.passages_loaded):
            return f"{where}: {self.message}"  # the input as a whole is refused
        return (f"{where}: {self.message} ({plural(self.loaded, 'document')}, "
                f"{plural(self.passages_loaded, 'passage')} loaded before this {self.before})")


def plural(count: int, noun: str) -> str:
    """``1 document``, ``2 documents``, ``0 documents``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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


def field_problem(record: dict, name: str, expected: str) -> str:
    """``"id" is missing`` or ``"id" must be <expected>, got null``: a missing field and
    one of the wrong type are different mistakes and are named differently."""
    if name not in record:
        return f'"{name}" is missing (expected {expected})'
    return f'"{name}" must be {expected}, got {json_kind(record[name])}'
