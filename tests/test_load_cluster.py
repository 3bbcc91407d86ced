"""Loading into a real cluster: placement, idempotence, stale chunks, error reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from loaders.formats import read_documents
from loaders.splitter import default_tokenizer
from loaders.writer import write_documents
from qasearch import keys
from qasearch.partitions import in_ranges, partition_for_doc, partition_tag, slot_of_tag
from qasearch.settings import to_environ
from qasearch.topology import cluster_client, masters, node_client


def _load(settings, path):
    client = cluster_client(settings)
    try:
        return write_documents(client, settings, read_documents(path), default_tokenizer())
    finally:
        client.close()


def _write(tmp_path, name, docs):
    path = tmp_path / name
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _partition(settings, doc_id):
    client = cluster_client(settings)
    try:
        count = int(client.hget(keys.CORPUS_META, "partitions"))
    finally:
        client.close()
    return partition_tag(partition_for_doc(doc_id, count))


def test_passages_land_on_the_node_owning_their_partition(cluster, tmp_path):
    docs = [{"id": f"place-{i}", "title": "P", "text": f"Paragraph {i}.\n\nSecond {i}."}
            for i in range(20)]
    summary = _load(cluster, _write(tmp_path, "p.jsonl", docs))
    assert (summary.documents, summary.passages) == (20, 40)
    nodes = masters(cluster)
    assert len({m.address for m in nodes}) == 3
    for d in docs:
        tag = _partition(cluster, d["id"])
        owner = next(m for m in nodes if in_ranges(slot_of_tag(tag), m.ranges))
        client = node_client(owner.host, owner.port, cluster)
        pid = keys.passage_id(d["id"], 1)
        assert client.hget(keys.passage(tag, pid), "text") == f"Second {d['id'][6:]}.".encode()
        assert client.sismember(keys.passage_index(tag), pid)
        entries = client.xrange(keys.ingest_stream(tag))
        assert any(f[b"pid"] == pid.encode() for _, f in entries)


def test_loading_twice_adds_nothing_and_shorter_documents_drop_stale_chunks(cluster, tmp_path):
    docs = [{"id": "twice_a", "text": "one\n\ntwo\n\nthree"}, {"id": "twice b", "text": "x"}]
    path = _write(tmp_path, "t.jsonl", docs)
    first = _load(cluster, path)
    tag = _partition(cluster, "twice_a")
    client = cluster_client(cluster)
    stream_len = client.xlen(keys.ingest_stream(tag))
    members = client.smembers(keys.passage_index(tag))
    second = _load(cluster, path)
    assert (first.written, second.written, second.unchanged) == (4, 0, 4)
    assert client.xlen(keys.ingest_stream(tag)) == stream_len
    assert client.smembers(keys.passage_index(tag)) == members

    _load(cluster, _write(tmp_path, "t2.jsonl", [{"id": "twice_a", "text": "one\n\nTWO"}]))
    stale = keys.passage_id("twice_a", 2)
    assert not client.exists(keys.passage(tag, stale))
    assert stale.encode() not in client.smembers(keys.passage_index(tag))
    assert client.hget(keys.passage(tag, keys.passage_id("twice_a", 1)), "text") == b"TWO"
    client.close()


def test_cli_reports_file_line_and_what_was_loaded_before(cluster, tmp_path):
    good = [{"id": f"cli-{i}", "text": f"text {i}"} for i in range(3)]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in good) + '{"id": "cli-x", "text": 4}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "qasearch", "load", str(path), "--quiet"],
        env={**os.environ, **to_environ(cluster)}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert f"{path} line 4" in proc.stderr
    assert "3 documents, 3 passages loaded before this" in proc.stderr
    client = cluster_client(cluster)
    tag = _partition(cluster, "cli-2")
    assert client.exists(keys.passage(tag, keys.passage_id("cli-2", 0)))
    client.close()
