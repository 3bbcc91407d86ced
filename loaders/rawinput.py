"""Reading corpus bytes safely: bounded sizes, UTF-8 only, clear words for what else it is.

Every reader goes through here, so a file in another encoding, a compressed or
binary file, or a record too large to hold is refused the same way: a
:class:`LoadError` naming the file, the place, and what to do about it. A UTF-8
byte-order mark at the start of a file is accepted (and dropped), as editors on
Windows write one.
"""

from __future__ import annotations

from pathlib import Path

from loaders.documents import LoadError

UTF8_BOM = b"\xef\xbb\xbf"
# (leading bytes, what the file is); longer marks first, as UTF-32 LE starts like UTF-16 LE.
SIGNATURES = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian byte-order mark)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian byte-order mark)"),
    (b"\xff\xfe", "UTF-16 (little-endian byte-order mark)"),
    (b"\xfe\xff", "UTF-16 (big-endian byte-order mark)"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"%PDF", "a PDF document"),
)
CONVERT_HINT = "convert it to UTF-8 text first (e.g. `iconv -t UTF-8`, or decompress it)"


def mib(size: int) -> str:
    """A size for a message: bytes below 1 MiB, else MiB."""
    return f"{size} bytes" if size < 1024 * 1024 else f"{size / (1024 * 1024):.1f} MiB"


def check_start(head: bytes, path: str) -> None:
    """Refuse a file whose first bytes show it is not UTF-8 text."""
    for mark, what in SIGNATURES:
        if head.startswith(mark):
            raise LoadError(path, "", f"the file is {what}, not UTF-8 text; {CONVERT_HINT}")
    if b"\x00" in head[:4096]:
        raise LoadError(path, "", "the file holds NUL bytes: binary data or UTF-16 without a "
                        f"byte-order mark, not UTF-8 text; {CONVERT_HINT}")


def decode(raw: bytes, path: str, where: str, first: bool = False) -> str:
    """``raw`` as UTF-8 (``first``: the file's first bytes, where a BOM may stand)."""
    if first and raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 4].hex(" ")
        at, of = (where, f" of the {where.split()[0]}") if where else (f"byte {exc.start}", "")
        raise LoadError(path, at, f"not valid UTF-8 at byte {exc.start}{of} ({exc.reason}: "
                        f"{bad}); the file may be Latin-1 or another encoding; "
                        f"{CONVERT_HINT}") from None


def read_whole(path: Path, max_bytes: int, setting: str = "QASEARCH_MAX_FILE_BYTES") -> str:
    """A whole file as text, refused before reading when larger than ``max_bytes``."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(str(path), "", f"the file is {mib(size)}, larger than the "
                            f"{mib(max_bytes)} limit ({setting})")
        raw = path.read_bytes()
    except OSError as exc:
        raise LoadError(str(path), "", f"cannot read: {exc.strerror}") from None
    check_start(raw[:4096], str(path))
    return decode(raw, str(path), "", first=True)
