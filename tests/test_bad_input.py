"""Malformed corpus files through ``qasearch load`` against the real session cluster.

Each case must end in a clear error naming the file, the line or record, and what
is wrong, with the counts of what was loaded before it; and exactly those documents
(and none after the error) must be in Redis.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from redis.crc import key_slot

from qasearch.cli import main
from qasearch.cluster import localcluster
from qasearch.core import keys
from qasearch.core.partitions import in_ranges, partition_for_doc, partition_tag, slot_of_tag
from qasearch.core.settings import to_environ
from qasearch.core.topology import cluster_client, masters, node_client
from tests.conftest import start_cluster


def _line(doc_id: str, text: str = "A short passage about tides and the moon.") -> bytes:
    return json.dumps({"id": doc_id, "title": "Bad input", "text": text}).encode()


def _squad(*articles: object) -> bytes:
    return json.dumps({"version": "1.1", "data": list(articles)}).encode()


def _article(title: str, context: object = "A paragraph about the tides.") -> dict:
    return {"title": title, "paragraphs": [{"context": context, "qas": []}]}


def _cord(paper_id: str, body: object = None) -> bytes:
    body = [{"text": "The tides follow the moon."}] if body is None else body
    return json.dumps({"paper_id": paper_id, "metadata": {"title": "T"},
                       "abstract": [], "body_text": body}).encode()


@dataclass
class Case:
    name: str
    fmt: str
    files: dict[str, bytes] | Callable[[], dict[str, bytes]]  # relative path -> content
    messages: list[str]  # all must be in the error
    loaded: list[str] = field(default_factory=list)  # doc ids stored before the error
    absent: list[str] = field(default_factory=list)  # doc ids that must not be stored
    env: dict[str, str] = field(default_factory=dict)


JUNK = random.Random(6).randbytes(6000)


def _huge_line_file() -> dict[str, bytes]:
    """A 50 MiB line between two good ones (built only when the case runs)."""
    huge = b'{"id": "bad-huge-x", "text": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    return {"c.jsonl": _line("bad-huge-a") + b"\n" + huge + b"\n" + _line("bad-huge-c") + b"\n"}


CASES = [
    Case("jsonl-truncated", "jsonl",
         {"c.jsonl": _line("bad-trunc-a") + b"\n" + _line("bad-trunc-b") + b"\n"
          + _line("bad-trunc-c")[:25]},
         ["c.jsonl line 3: invalid JSON", "2 documents, 2 passages loaded before this line"],
         loaded=["bad-trunc-a", "bad-trunc-b"], absent=["bad-trunc-c"]),
    Case("jsonl-text-number", "jsonl",
         {"c.jsonl": _line("bad-type-a") + b'\n{"id": "bad-type-b", "text": 5}\n'
          + _line("bad-type-c") + b"\n"},
         ['line 2: "text" must be a string ("" empties the document), got a number',
          "1 document, 1 passage loaded before this line"],
         loaded=["bad-type-a"], absent=["bad-type-b", "bad-type-c"]),
    Case("jsonl-latin1", "jsonl",
         {"c.jsonl": _line("bad-latin-a") + b"\n" + _line("bad-latin-b", "caf\xe9")
          .replace(b"\\u00e9", b"\xe9") + b"\n"},
         ["line 2: not valid UTF-8 at byte", "Latin-1", "1 document,"],
         loaded=["bad-latin-a"], absent=["bad-latin-b"]),
    Case("jsonl-utf16", "jsonl",
         {"c.jsonl": (_line("bad-utf16-a").decode() + "\n").encode("utf-16")},
         ["c.jsonl: the file is UTF-16 (little-endian byte-order mark), not UTF-8"],
         absent=["bad-utf16-a"]),
    Case("jsonl-huge-line", "jsonl",
         _huge_line_file,
         ["line 2: line longer than 16777216 bytes", "1 document,"],
         loaded=["bad-huge-a"], absent=["bad-huge-x", "bad-huge-c"]),
    Case("jsonl-binary", "jsonl", {"c.jsonl": JUNK}, ["NUL bytes", "not UTF-8 text"]),
    Case("jsonl-gzip", "jsonl", {"c.jsonl": gzip.compress(_line("bad-gz-a") + b"\n")},
         ["gzip-compressed"], absent=["bad-gz-a"]),
    Case("squad-truncated", "squad",
         {"s.json": _squad(_article("bad-sq-trunc"))[:-10]},
         ["s.json line 1 column", "invalid JSON", "0 documents, 0 passages loaded"],
         absent=["bad-sq-trunc#0"]),
    Case("squad-paragraphs-not-a-list", "squad",
         {"s.json": _squad(_article("bad-sq-para"), {"title": "U", "paragraphs": "text"})},
         ['record data[1]: "paragraphs" must be an array, got a string',
          "0 documents, 0 passages loaded before this record"],
         absent=["bad-sq-para#0"]),  # the whole file is checked before anything is written
    Case("squad-context-number", "squad",
         {"s.json": _squad(_article("bad-sq-ctx"), _article("V", 12))},
         ['record data[1].paragraphs[0]: "context" must be a non-empty string, got a number'],
         absent=["bad-sq-ctx#0"]),
    Case("squad-latin1", "squad",
         {"s.json": _squad(_article("bad-sq-latin", "caf\u00e9")).replace(b"\\u00e9", b"\xe9")},
         ["s.json byte", "not valid UTF-8"], absent=["bad-sq-latin#0"]),
    Case("squad-too-large", "squad", {"s.json": _squad(_article("bad-sq-big", "x " * 1000))},
         ["larger than the 1000 bytes limit (QASEARCH_MAX_FILE_BYTES)"],
         absent=["bad-sq-big#0"], env={"QASEARCH_MAX_FILE_BYTES": "1000"}),
    Case("cord19-truncated-file", "cord19",
         {"d/a.json": _cord("bad-cord-a"), "d/b.json": _cord("bad-cord-b")[:30]},
         ["b.json line 1: invalid JSON", "1 document, 1 passage loaded before this file"],
         loaded=["bad-cord-a"], absent=["bad-cord-b"]),
    Case("cord19-body-not-a-list", "cord19",
         {"d/a.json": _cord("bad-body-a"), "d/b.json": _cord("bad-body-b", "just text")},
         ['b.json field "body_text": must be a list of paragraphs, got a string', "1 document,"],
         loaded=["bad-body-a"], absent=["bad-body-b"]),
    Case("cord19-binary-file", "cord19",
         {"d/a.json": _cord("bad-bin-a"), "d/b.json": JUNK},
         ["b.json: the file holds NUL bytes", "1 document, 1 passage loaded before this file"],
         loaded=["bad-bin-a"]),
    Case("cord19-metadata-latin1", "cord19",
         {"d/a.json": _cord("bad-meta-a"),
          "d/metadata.csv": "cord_uid,sha,title\nx,bad-meta-a,Caf\u00e9\n".encode("latin-1")},
         ["metadata.csv near line", "not valid UTF-8", "0 documents"], absent=["bad-meta-a"]),
]


def _load(settings, monkeypatch, capsys, *args: str, **env: str) -> tuple[int, str, str]:
    """``qasearch load ARGS --quiet`` in this process (no interpreter start per case), with
    the cluster's settings (and ``env``) in the environment; (exit code, stdout, stderr)."""
    for name, value in {**to_environ(settings), **env}.items():
        monkeypatch.setenv(name, value)
    code = main(["load", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def _stored(client, partitions: int, doc_id: str) -> bool:
    tag = partition_tag(partition_for_doc(doc_id, partitions))
    return bool(client.exists(keys.document(tag, doc_id)))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_input_ends_in_a_clear_error_and_reports_what_was_stored(
    cluster, tmp_path, monkeypatch, capsys, case
):
    files = case.files() if callable(case.files) else case.files
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    target = tmp_path / next(iter(files)).split("/")[0]
    code, out, error = _load(cluster, monkeypatch, capsys, str(target), "--format", case.fmt,
                             **case.env)
    assert code == 2, out + error
    assert error.startswith("qasearch load: error: ") and str(tmp_path) in error
    for message in case.messages:
        assert message in error, error
    client = cluster_client(cluster)
    try:
        partitions = int(client.hget(keys.CORPUS_META, "partitions") or 0)
        if partitions:
            assert [d for d in case.loaded if not _stored(client, partitions, d)] == []
            assert [d for d in case.absent if _stored(client, partitions, d)] == []
        else:
            assert not case.loaded  # nothing was ever loaded into this cluster
    finally:
        client.close()


def test_a_utf8_byte_order_mark_is_accepted(cluster, tmp_path, monkeypatch, capsys):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _line("bad-bom-a") + b"\n")
    code, out, error = _load(cluster, monkeypatch, capsys, str(path))
    assert code == 0, error
    assert "loaded 1 document," in out


def test_a_master_lost_mid_load_is_reported_with_exactly_what_was_written(
    tmp_path, monkeypatch, capsys
):
    settings = start_cluster(tmp_path, masters=3, replicas=0)
    try:
        found = masters(settings)
        meta_slot = key_slot(keys.CORPUS_META.encode())
        victim = next(m for m in found if not in_ranges(meta_slot, m.ranges))
        spec = next(s for s in localcluster.layout(settings) if s.port == victim.port)
        os.kill(localcluster.node_pid(spec), signal.SIGTERM)  # a node this test started
        deadline = time.monotonic() + 30
        while localcluster.node_pid(spec) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        def on_victim(doc_id: str) -> bool:
            tag = partition_tag(partition_for_doc(doc_id, 3 * settings.partitions_per_master))
            return in_ranges(slot_of_tag(tag), victim.ranges)

        # documents of live masters first: their partitions are written before the failure
        ids = sorted((f"lost-{i}" for i in range(40)), key=on_victim)
        path = tmp_path / "c.jsonl"
        path.write_bytes(b"".join(_line(i) + b"\n" for i in ids))
        code, _, error = _load(settings, monkeypatch, capsys, str(path))
        assert code == 2 and f"cluster error while loading {path}" in error, error
        written = re.search(r"\((\d+) documents, (\d+) passages written before it\)", error)
        assert written, error
        client = cluster_client(settings)
        partitions = int(client.hget(keys.CORPUS_META, "partitions"))
        client.close()
        stored = 0
        for doc_id in ids:
            tag = partition_tag(partition_for_doc(doc_id, partitions))
            owner = next(m for m in found if in_ranges(slot_of_tag(tag), m.ranges))
            if owner.port != victim.port:
                node = node_client(owner.host, owner.port, settings)
                stored += node.exists(keys.document(tag, doc_id))
                node.close()
        assert 0 < stored == int(written.group(1)) < len(ids)
    finally:
        localcluster.down(settings, purge=True)
