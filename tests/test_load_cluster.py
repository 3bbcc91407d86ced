"""Loading into a real cluster: placement, idempotence, stale chunks, error reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gears import node_data
from loaders.documents import LoadError
from loaders.formats import read_documents
from loaders.splitter import default_tokenizer
from loaders.writer import write_documents
from qasearch.core import keys
from qasearch.core.partitions import (
    in_ranges,
    partition_for_doc,
    partition_index,
    partition_tag,
    slot_of_tag,
)
from qasearch.core.settings import to_environ
from qasearch.core.topology import cluster_client, masters, node_client


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
    assert "3 documents, 3 passages loaded before this line" in proc.stderr
    client = cluster_client(cluster)
    tag = _partition(cluster, "cli-2")
    assert client.exists(keys.passage(tag, keys.passage_id("cli-2", 0)))
    client.close()


def _stream_pids(client, tag, op):
    return [f[b"pid"].decode() for _, f in client.xrange(keys.ingest_stream(tag))
            if f[b"op"] == op.encode()]


def test_partition_count_is_fixed_at_first_load(cluster, tmp_path):
    _load(cluster, _write(tmp_path, "m.jsonl", [{"id": "meta-1", "text": "x"}]))
    client = cluster_client(cluster)
    try:
        stored = int(client.hget(keys.CORPUS_META, "partitions"))
    finally:
        client.close()
    assert stored == len(masters(cluster)) * cluster.partitions_per_master


def test_stale_chunks_leave_index_tensors_and_say_so_on_the_stream(cluster, tmp_path):
    doc_id = "stale-doc"
    _load(cluster, _write(tmp_path, "a.jsonl", [{"id": doc_id, "text": "a\n\nb\n\nc\n\nd"}]))
    tag = _partition(cluster, doc_id)
    client = cluster_client(cluster)
    gone = [keys.passage_id(doc_id, c) for c in (2, 3)]
    for pid in gone:  # what a worker would have written
        client.hset(keys.tensors(tag, pid), "ids", b"x")
    version = int(client.hget(keys.CORPUS_META, "version"))
    summary = _load(cluster, _write(tmp_path, "b.jsonl", [{"id": doc_id, "text": "a\n\nb"}]))
    assert (summary.written, summary.unchanged, summary.deleted) == (0, 2, 2)
    for pid in gone:
        assert not client.exists(keys.passage(tag, pid), keys.tensors(tag, pid))
        assert not client.sismember(keys.passage_index(tag), pid)
    assert set(gone) <= set(_stream_pids(client, tag, "del"))
    assert client.hget(keys.document(tag, doc_id), "passages") == b"2"
    assert int(client.hget(keys.CORPUS_META, "version")) == version + 1
    client.close()


def test_a_worker_stores_no_tensors_for_a_passage_deleted_while_it_tensorized(cluster, tmp_path):
    """The loader may delete a passage between the worker's read of its text and the
    worker's write of its tensors; the write must then leave nothing behind."""
    doc_id = "deleted-meanwhile"
    _load(cluster, _write(tmp_path, "k.jsonl", [{"id": doc_id, "text": "kept\n\ngone"}]))
    tag = _partition(cluster, doc_id)
    owner = next(m for m in masters(cluster) if in_ranges(slot_of_tag(tag), m.ranges))
    client = node_client(owner.host, owner.port, cluster)
    kept, gone = keys.passage_id(doc_id, 0), keys.passage_id(doc_id, 1)
    _load(cluster, _write(tmp_path, "k2.jsonl", [{"id": doc_id, "text": "kept"}]))
    stored = node_data.write_tensors(client, partition_index(tag), [
        (kept, {"ids": b"1", "reader_tok": b"t"}), (gone, {"ids": b"2", "reader_tok": b"t"})])
    assert stored == 1
    assert client.exists(keys.tensors(tag, kept))
    assert not client.exists(keys.passage(tag, gone), keys.tensors(tag, gone))
    client.delete(keys.tensors(tag, kept))  # not a real tensor: a worker makes its own
    client.close()


def test_same_id_twice_in_one_file_last_version_wins_when_asked(cluster, tmp_path):
    doc_id = "dup-in-file"
    path = _write(tmp_path, "d.jsonl", [{"id": doc_id, "text": "v1 a\n\nv1 b\n\nv1 c"},
                                        {"id": doc_id, "text": "v2 a"}])
    client = cluster_client(cluster)
    try:
        summary = write_documents(client, cluster, read_documents(path), default_tokenizer(),
                                  replace_duplicates=True)
    finally:
        client.close()
    assert (summary.documents, summary.passages, summary.replaced) == (1, 1, 1)
    tag = _partition(cluster, doc_id)
    client = cluster_client(cluster)
    pids = {m.decode() for m in client.smembers(keys.passage_index(tag))}
    assert {p for p in pids if keys.doc_of_passage(p) == doc_id} == {keys.passage_id(doc_id, 0)}
    assert client.hget(keys.passage(tag, keys.passage_id(doc_id, 0)), "text") == b"v2 a"
    assert client.hget(keys.document(tag, doc_id), "passages") == b"1"
    client.close()


def test_moved_text_updates_offsets_without_asking_workers(cluster, tmp_path):
    doc_id = "moved-offsets"
    _load(cluster, _write(tmp_path, "o1.jsonl", [{"id": doc_id, "text": "one\n\ntwo"}]))
    tag = _partition(cluster, doc_id)
    client = cluster_client(cluster)
    before = client.xlen(keys.ingest_stream(tag))
    moved = [{"id": doc_id, "text": "\n one\n\ntwo"}]
    summary = _load(cluster, _write(tmp_path, "o2.jsonl", moved))
    assert (summary.written, summary.unchanged) == (0, 2)
    assert client.xlen(keys.ingest_stream(tag)) == before
    second = keys.passage(tag, keys.passage_id(doc_id, 1))
    assert client.hmget(second, ["char_start", "source"]) == [b"7", b"o2.jsonl"]
    client.close()


def test_reader_error_keeps_what_came_before_and_counts_it(cluster, tmp_path):
    path = tmp_path / "e.jsonl"
    good = [{"id": f"err-{i}", "text": f"first {i}\n\nsecond {i}"} for i in range(2)]
    path.write_text("".join(json.dumps(d) + "\n" for d in good) + "{broken\n"
                    + json.dumps({"id": "err-after", "text": "never"}) + "\n")
    with pytest.raises(LoadError) as info:
        _load(cluster, path)
    assert (info.value.location, info.value.loaded, info.value.passages_loaded) == ("line 3", 2, 4)
    client = cluster_client(cluster)
    tag = _partition(cluster, "err-1")
    assert client.hget(keys.document(tag, "err-1"), "passages") == b"2"
    after = _partition(cluster, "err-after")
    assert not client.exists(keys.document(after, "err-after"))
    client.close()


def test_cli_loads_squad_cord19_and_text_and_prints_a_summary(cluster, tmp_path):
    squad = tmp_path / "q.json"
    squad.write_text(json.dumps({"data": [{"title": "CLI squad", "paragraphs": [
        {"context": "Paris is in France.", "qas": []}]}]}))
    cord = tmp_path / "cord"
    cord.mkdir()
    (cord / "p.json").write_text(json.dumps({
        "paper_id": "cli-cord", "metadata": {"title": ""},
        "abstract": [{"text": "Abs.", "section": "Abstract"}],
        "body_text": [{"text": "Body.", "section": "Intro"}]}))
    (cord / "metadata.csv").write_text("cord_uid,sha,title\nu,cli-cord,From CSV\n")
    text = tmp_path / "cli-text.txt"
    text.write_text("Title line\n\nBody line.")
    env = {**os.environ, **to_environ(cluster)}
    for path, docs, passages in ((squad, 1, 1), (cord, 1, 2), (text, 1, 2)):
        proc = subprocess.run([sys.executable, "-m", "qasearch", "load", str(path)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert f"loaded {docs} document, {passages} passage" in proc.stdout
    client = cluster_client(cluster)
    tag = _partition(cluster, "cli-cord")
    assert client.hmget(keys.passage(tag, keys.passage_id("cli-cord", 1)), ["text", "title"]) == [
        b"Body.", b"From CSV"]
    tag = _partition(cluster, "CLI squad#0")
    assert client.hget(keys.passage(tag, keys.passage_id("CLI squad#0", 0)), "text") == (
        b"Paris is in France.")
    client.close()


def test_throughput_of_a_generated_corpus(cluster, tmp_path):
    docs = [{"id": f"speed-{i}", "title": f"Doc {i}",
             "text": "\n\n".join(f"Passage {j} of document {i} says something short."
                                 for j in range(10))} for i in range(200)]
    summary = _load(cluster, _write(tmp_path, "speed.jsonl", docs))
    assert summary.passages == 2000 and summary.written == 2000
    print(f"\n{summary.passages_per_second:.0f} passages/s ({summary.seconds:.2f} s)")
