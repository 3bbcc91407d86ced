"""CORD-19: one document JSON file, or a folder of them (``pdf_json/``, ``pmc_json/``)
with ``metadata.csv``.

A document's text is its abstract and body paragraphs in order, joined by blank
lines, so every paragraph becomes at least one passage; each paragraph's
``section`` goes with its passages (not into their text). PMC's "Pre-publication
history" paragraphs (links to a journal's review pages) are left out.

With metadata.csv, the parses of one paper (a row) load as one document: the PMC
parse when there is one (CORD-19's advice: it is cleaner than the PDF parse), else
the first PDF parse the row names. Every other parse of the row is loaded as an
empty document, so a copy loaded earlier under its id is removed. Titles come from
the row's ``title``, else from the parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from loaders import rawinput
from loaders.cord19_metadata import Metadata, find_metadata, read_metadata
from loaders.documents import Document, LoadError, field_problem, json_kind, plural
from qasearch.core.settings import Settings

DEFAULTS = Settings()
BOILERPLATE_SECTIONS = frozenset({"pre-publication history"})


def file_id(path: Path) -> str:
    """A parse's id as CORD-19 names its file: ``<sha>.json``, ``<PMCID>.xml.json``."""
    name = path.name.removesuffix(".json")
    return name.removesuffix(".xml")


def _is_pmc(path: Path) -> bool:
    return path.name.endswith(".xml.json") or "pmc_json" in path.parts


class Cord19Reader:
    """The documents of a CORD-19 load, in file order; after the last one, :meth:`notes`
    says what metadata.csv did (file used, title sources, unmatched rows and documents,
    merged parses, boilerplate left out)."""

    def __init__(self, files: list[Path], meta: Metadata | None, max_file_bytes: int,
                 no_meta_reason: str) -> None:
        self.files, self.meta, self.max_file_bytes = files, meta, max_file_bytes
        self.no_meta_reason = no_meta_reason
        self.superseded = self._superseded() if meta else {}
        self.titles = {"metadata.csv": 0, "the parse": 0, "none": 0}
        self.matched_rows: set[int] = set()
        self.unmatched_docs = 0
        self.boilerplate = 0
        self._iter = self._documents()

    def __iter__(self) -> Cord19Reader:
        return self

    def __next__(self) -> Document:
        return next(self._iter)

    def _superseded(self) -> dict[Path, Path]:
        """Parse file -> the file of the same paper loaded instead of it."""
        assert self.meta is not None
        by_row: dict[int, list[Path]] = {}
        for path in self.files:
            row = self.meta.row_of(file_id(path), path.name)
            if row is not None:
                by_row.setdefault(row, []).append(path)
        out = {}
        for row, paths in by_row.items():
            if len(paths) < 2:
                continue
            shas = self.meta.rows[row].shas
            order = sorted(paths, key=lambda p: (not _is_pmc(p), shas.index(file_id(p))
                                                 if file_id(p) in shas else len(shas), p))
            out.update({p: order[0] for p in order[1:]})
        return out

    def _documents(self) -> Iterator[Document]:
        for path in self.files:
            doc = self._read(path)
            if path in self.superseded:
                # Loaded as empty: removes what an earlier load stored under this id.
                yield Document(doc_id=doc.doc_id, title="", text="", source=path.name,
                               path=str(path))
            else:
                yield self._titled(doc, path)

    def _titled(self, doc: Document, path: Path) -> Document:
        title, source = doc.title, "the parse" if doc.title else "none"
        if self.meta is not None:
            row = self.meta.row_of(doc.doc_id, path.name)
            if row is None:
                self.unmatched_docs += 1
            else:
                self.matched_rows.add(row)
                if self.meta.rows[row].title:
                    title, source = self.meta.rows[row].title, "metadata.csv"
        if doc.text:
            self.titles[source] += 1
        return Document(doc.doc_id, title, doc.text, doc.source, doc.path, doc.location,
                        doc.sections)

    def _read(self, path: Path) -> Document:
        text = rawinput.read_whole(path, self.max_file_bytes)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LoadError(str(path), f"line {exc.lineno}", f"invalid JSON: {exc.msg}",
                            before="file") from None
        if not isinstance(doc, dict):
            raise LoadError(str(path), "", f"expected a JSON object, got {json_kind(doc)}")
        paper_id = doc.get("paper_id")
        if not isinstance(paper_id, str) or not paper_id.strip():
            raise LoadError(str(path), 'field "paper_id"',
                            field_problem(doc, "paper_id", "a non-empty string"), before="file")
        if "body_text" not in doc:
            raise LoadError(str(path), 'field "body_text"',
                            field_problem(doc, "body_text", "an array of paragraphs"),
                            before="file")
        paragraphs = self._paragraphs(doc, "abstract", path) + self._paragraphs(
            doc, "body_text", path)
        sections, offset = [], 0
        for text_, section in paragraphs:
            sections.append((offset, section))
            offset += len(text_) + 2
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        title = meta.get("title") if isinstance(meta.get("title"), str) else ""
        return Document(doc_id=paper_id.strip(), title=title.strip(),
                        text="\n\n".join(t for t, _ in paragraphs), source=path.name,
                        path=str(path), sections=tuple(sections))

    def _paragraphs(self, doc: dict, name: str, path: Path) -> list[tuple[str, str]]:
        items = doc.get(name, [])
        if not isinstance(items, list):
            raise LoadError(str(path), f'field "{name}"',
                            f"must be a list of paragraphs, got {json_kind(items)}", before="file")
        out = []
        for i, item in enumerate(items):
            where = f"{name}[{i}]"
            if not isinstance(item, dict):
                raise LoadError(str(path), where, f'expected an object with "text", got '
                                f"{json_kind(item)}", before="file")
            text, section = item.get("text"), item.get("section", "")
            if not isinstance(text, str):
                raise LoadError(str(path), where, field_problem(item, "text", "a string"),
                                before="file")
            if section is None:
                section = ""
            if not isinstance(section, str):
                raise LoadError(str(path), where, field_problem(item, "section", "a string"),
                                before="file")
            if section.strip().casefold() in BOILERPLATE_SECTIONS:
                self.boilerplate += 1
                continue
            if text.strip():
                out.append((text.strip(), section.strip()))
        return out

    def notes(self) -> list[str]:
        """Lines for the load summary (meaningful once every document was read)."""
        if self.meta is None:
            lines = [f"metadata: none ({self.no_meta_reason}); titles: "
                     f"{self.titles['the parse']} from the parse, {self.titles['none']} without "
                     "one; the PDF and PMC parses of one paper are not linked without it"]
        else:
            t = self.titles
            lines = [
                f"metadata: {self.meta.path}; titles: {t['metadata.csv']} from metadata.csv, "
                f"{t['the parse']} from the parse, {t['none']} without one",
                f"metadata: {plural(len(self.meta.rows) - len(self.matched_rows), 'row')} "
                f"matching no document, {plural(self.unmatched_docs, 'document')} matching "
                f"no row, {plural(self.meta.blank_titles, 'row')} with a blank title",
            ]
            if not self.meta.has_title:
                lines.append(f"metadata: {self.meta.path} has no title column")
        if self.superseded:
            lines.append(f"merged {plural(len(self.superseded), 'parse')} into another parse "
                         "of the same paper (PMC preferred)")
        if self.boilerplate:
            lines.append(f"left out {plural(self.boilerplate, 'paragraph')} of "
                         '"Pre-publication history"')
        return lines


def read_cord19(
    path: Path, metadata: Path | None = None, settings: Settings = DEFAULTS
) -> Cord19Reader:
    """Documents of ``path`` (one document JSON, or every ``*.json`` under a folder, sorted
    by path); metadata from ``metadata``, else the folder's metadata.csv.

    The metadata is read, and refused if malformed, before any document; a malformed
    document file stops the load there (the files before it are loaded and reported)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.json") if p.is_file())
    if not files:
        raise LoadError(str(path), "", "no CORD-19 document JSON files in this folder (expected "
                        "<sha>.json / <PMCID>.xml.json, e.g. under pdf_json/ and pmc_json/)")
    found = metadata or (find_metadata(path) if path.is_dir() else None)
    reason = ("none in the folder, none given with --metadata" if path.is_dir()
              else "none given with --metadata")
    meta = read_metadata(found, settings.max_record_bytes) if found else None
    return Cord19Reader(files, meta, settings.max_file_bytes, reason)
