"""CORD-19's metadata.csv: checked whole before anything is loaded, then used to title
documents and to link the PDF and PMC parses of one paper.

A row is one paper: ``cord_uid``, ``sha`` (``;``-separated ids of its PDF parses),
``pmcid`` (the id of its PMC parse), ``title``, and ``pdf_json_files`` /
``pmc_json_files`` (``;``-separated paths of the parse files). A parse file is matched
to a row by its file name in those path columns, else by its id (the file's name
without ``.json`` / ``.xml.json``, which is the parse's ``paper_id`` in CORD-19), and
a document read from it by its ``paper_id``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from loaders import rawinput
from loaders.documents import LoadError
from qasearch.core.settings import Settings

ID_COLUMNS = ("sha", "pmcid", "cord_uid")
FILE_COLUMNS = ("pdf_json_files", "pmc_json_files")
DEFAULTS = Settings()


@dataclass
class Row:
    line: int
    title: str
    shas: list[str]
    pmcid: str


@dataclass
class Metadata:
    path: Path
    has_title: bool
    rows: list[Row] = field(default_factory=list)
    by_id: dict[str, int] = field(default_factory=dict)  # sha / pmcid / cord_uid -> row
    by_file: dict[str, int] = field(default_factory=dict)  # parse file name -> row
    blank_titles: int = 0

    def row_of(self, paper_id: str, file_name: str = "") -> int | None:
        found = self.by_file.get(file_name) if file_name else None
        return found if found is not None else self.by_id.get(paper_id)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


def _refuse_non_csv(path: Path, head: bytes) -> None:
    rawinput.check_start(head, str(path))
    first = head.lstrip(rawinput.UTF8_BOM).lstrip()[:1]
    if first in (b"{", b"["):
        raise LoadError(str(path), "", "this is JSON, not a CSV; --metadata takes CORD-19's "
                        "metadata.csv (a header line naming cord_uid, sha, pmcid, title, ...)")


def read_metadata(path: Path, max_field_bytes: int = DEFAULTS.max_record_bytes) -> Metadata:
    """The rows of ``path``; refused (:class:`LoadError`) when it is not a CSV, has none of
    the columns that link rows to documents, or cannot be read whole.

    Fields are bounded by ``max_field_bytes`` (metadata.csv carries whole abstracts,
    longer than the csv module's default limit, but a runaway quote must not eat memory)."""
    csv.field_size_limit(max_field_bytes)
    reader = None
    try:
        with open(path, "rb") as raw:
            _refuse_non_csv(path, raw.read(4096))
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            if not any(c in header for c in ID_COLUMNS):
                shown = ", ".join(header[:8]) or "nothing"
                raise LoadError(str(path), "line 1", "metadata CSV has none of the columns that "
                                f"link rows to documents ({', '.join(ID_COLUMNS)}); its header "
                                f"has {shown}")
            reader.fieldnames = header
            meta = Metadata(path, has_title="title" in header)
            for row in reader:
                _add_row(meta, row, reader.line_num)
    except OSError as exc:
        raise LoadError(str(path), "", f"cannot read metadata CSV: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = reader.line_num + 1 if reader else 1
        raise LoadError(str(path), f"near line {line}",
                        f"metadata CSV is not valid UTF-8 ({exc.reason}); "
                        f"{rawinput.CONVERT_HINT}") from None
    except csv.Error as exc:
        where = f"line {reader.line_num}" if reader else ""
        raise LoadError(str(path), where, f"unreadable metadata CSV: {exc}") from None
    return meta


def _add_row(meta: Metadata, row: dict, line: int) -> None:
    index = len(meta.rows)
    title = (row.get("title") or "").strip()
    if meta.has_title and not title:
        meta.blank_titles += 1
    shas, pmcid = _split(row.get("sha")), (row.get("pmcid") or "").strip()
    meta.rows.append(Row(line, title, shas, pmcid))
    # The first row naming an id keeps it (metadata.csv repeats a few ids).
    for paper_id in [*shas, pmcid, (row.get("cord_uid") or "").strip()]:
        if paper_id:
            meta.by_id.setdefault(paper_id, index)
    for column in FILE_COLUMNS:
        for file in _split(row.get(column)):
            meta.by_file.setdefault(Path(file).name, index)


def find_metadata(folder: Path) -> Path | None:
    """The metadata.csv a CORD-19 folder holds: at its top, else the first one below it."""
    top = folder / "metadata.csv"
    if top.is_file():
        return top
    return next(iter(sorted(folder.rglob("metadata.csv"))), None)
