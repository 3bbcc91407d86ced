"""Loading replaces exactly what the cluster held for a document (issue 13): empty
documents, duplicate ids, merged CORD-19 parses, metadata.csv checked first, messages.

Every test looks at what the cluster holds afterwards, not only at what was printed.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from loaders.formats import read_documents
from loaders.splitter import default_tokenizer
from loaders.writer import write_documents
from qasearch.cli import main
from qasearch.core import keys
from qasearch.core.partitions import partition_for_doc, partition_tag
from qasearch.core.settings import to_environ
from qasearch.core.topology import cluster_client, node_client
from tests.system import owner_of_doc, qasearch, wait_for


@pytest.fixture
def cli(cluster, monkeypatch, capsys):
    """``qasearch load ARGS --quiet`` in this process (an interpreter start per call costs
    more than the load), with the cluster's settings in the environment."""
    for name, value in to_environ(cluster).items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> SimpleNamespace:
        code = main(["load", *args, "--quiet"])
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def _held(settings, doc_id: str) -> dict:
    """Everything the cluster holds for ``doc_id``."""
    client = cluster_client(settings)
    try:
        tag = partition_tag(partition_for_doc(doc_id, int(client.hget(keys.CORPUS_META,
                                                                      "partitions"))))
        pids = sorted(p.decode() for p in client.smembers(keys.passage_index(tag))
                      if keys.doc_of_passage(p.decode()) == doc_id)
        stored = [i for i in range(40) if client.exists(keys.passage(tag, keys.passage_id(
            doc_id, i)))]
        tensors = [i for i in range(40) if client.exists(keys.tensors(tag, keys.passage_id(
            doc_id, i)))]
        cached = [i for i in range(40) if client.exists(keys.cached_answers(
            tag, keys.passage_id(doc_id, i)))]
        return {"doc": client.hgetall(keys.document(tag, doc_id)), "index": pids,
                "passages": stored, "tensors": tensors, "cached": cached, "tag": tag}
    finally:
        client.close()


def _fake_worker_output(settings, doc_id: str, chunks: int) -> list[str]:
    """Tensors and a cached answer per passage, as a worker would have written them."""
    tag = _held(settings, doc_id)["tag"]
    client = cluster_client(settings)
    answers = []
    for i in range(chunks):
        pid = keys.passage_id(doc_id, i)
        answer = keys.answer(tag, pid, "what?")
        client.hset(keys.tensors(tag, pid), "ids", b"x")
        client.set(answer, b"{}")
        client.sadd(keys.cached_answers(tag, pid), answer)
        client.sadd(keys.cached_passages(tag), pid)
        answers.append(answer)
    client.close()
    return answers


def _cord(paper_id: str, paragraphs: list[tuple[str, str]], title: str = "") -> str:
    return json.dumps({"paper_id": paper_id, "metadata": {"title": title}, "abstract": [],
                       "body_text": [{"text": t, "section": s, "cite_spans": []}
                                     for t, s in paragraphs]})


def test_an_empty_cord19_document_removes_everything_it_held(cluster, cli, tmp_path):
    folder = tmp_path / "cord"
    folder.mkdir()
    paper = folder / "empty-paper.json"
    paper.write_text(_cord("empty-paper", [("One.", "Intro"), ("Two.", "Methods"),
                                           ("Three.", "Results")]))
    assert cli(str(folder)).returncode == 0
    answers = _fake_worker_output(cluster, "empty-paper", 3)
    paper.write_text(_cord("empty-paper", []))
    proc = cli(str(folder))
    assert proc.returncode == 0, proc.stderr
    assert "loaded 0 documents, 0 passages" in proc.stdout
    assert "1 document came in empty; 1 document removed with all their passages" in proc.stdout
    held = _held(cluster, "empty-paper")
    assert (held["doc"], held["index"], held["passages"], held["tensors"], held["cached"]) == (
        {}, [], [], [], [])
    client = cluster_client(cluster)
    assert not any(client.exists(a) for a in answers)
    assert not any(client.sismember(keys.cached_passages(held["tag"]), keys.passage_id(
        "empty-paper", i)) for i in range(3))
    client.close()


def test_empty_jsonl_and_text_documents_remove_what_they_held(cluster, tmp_path):
    client = cluster_client(cluster)
    try:
        for name, full, empty in (
            ("empty-line.jsonl", '{"id": "empty-line", "text": "a\\n\\nb"}\n',
             '{"id": "empty-line", "text": "  "}\n'),
            ("empty-text.txt", "Title\n\nbody", "\n"),
        ):
            path = tmp_path / name
            path.write_text(full)
            write_documents(client, cluster, read_documents(path), default_tokenizer())
            doc_id = path.stem
            assert len(_held(cluster, doc_id)["index"]) == 2
            path.write_text(empty)
            summary = write_documents(client, cluster, read_documents(path), default_tokenizer())
            assert (summary.documents, summary.passages, summary.removed) == (0, 0, 1)
            held = _held(cluster, doc_id)
            assert (held["doc"], held["index"], held["passages"]) == ({}, [], [])
    finally:
        client.close()


def test_the_same_paper_id_in_two_files_is_an_error_naming_both(cluster, cli, tmp_path):
    folder = tmp_path / "dups"
    folder.mkdir()
    (folder / "a.json").write_text(_cord("dup-paper", [("First copy.", "")]))
    (folder / "b.json").write_text(_cord("dup-paper", [("Second copy.", ""), ("More.", "")]))
    proc = cli(str(folder))
    assert proc.returncode == 2
    assert f'{folder / "b.json"}: document id "dup-paper" again: it was first read at ' \
           f'{folder / "a.json"}' in proc.stderr
    assert "(1 document, 1 passage loaded before this file)" in proc.stderr
    assert _held(cluster, "dup-paper")["index"] == [keys.passage_id("dup-paper", 0)]
    proc = cli(str(folder), "--replace-duplicates")
    assert proc.returncode == 0, proc.stderr
    assert "loaded 1 document, 2 passages" in proc.stdout  # what the cluster holds
    assert "1 record replaced by a later one with the same id" in proc.stdout
    assert len(_held(cluster, "dup-paper")["index"]) == 2


def test_pdf_and_pmc_parses_merge_and_sections_are_kept(cluster, cli, tmp_path):
    folder = tmp_path / "merge"
    (folder / "pdf_json").mkdir(parents=True)
    (folder / "pmc_json").mkdir()
    (folder / "pdf_json" / "mergesha1.json").write_text(
        _cord("mergesha1", [("PDF text.", "Intro")], title="PDF title"))
    assert cli(str(folder)).returncode == 0  # no metadata yet: loaded on its own
    assert _held(cluster, "mergesha1")["index"]
    (folder / "pmc_json" / "PMC77.xml.json").write_text(_cord("PMC77", [
        ("PMC intro.", "Introduction"), ("Some results.", "Results"),
        ("The pre-publication history for this paper can be accessed here:",
         "Pre-publication history")]))
    (folder / "metadata.csv").write_text(
        "cord_uid,sha,source_x,title,pmcid,pdf_json_files,pmc_json_files\n"
        "u77,mergesha1,PMC,The CSV title,PMC77,document_parses/pdf_json/mergesha1.json,"
        "document_parses/pmc_json/PMC77.xml.json\n"
        "u78,nosuchsha,PMC,,,,\n")
    proc = cli(str(folder))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "loaded 1 document, 2 passages" in out
    assert "1 document came in empty; 1 document removed" in out
    assert "merged 1 parse into another parse of the same paper (PMC preferred)" in out
    assert f"metadata: {folder / 'metadata.csv'}; titles: 1 from metadata.csv, 0 from the " \
           "parse, 0 without one" in out
    assert "metadata: 1 row matching no document, 0 documents matching no row, 1 row with " \
           "a blank title" in out
    assert 'left out 1 paragraph of "Pre-publication history"' in out
    assert _held(cluster, "mergesha1")["index"] == []
    held = _held(cluster, "PMC77")
    assert len(held["index"]) == 2
    client = cluster_client(cluster)
    second = client.hmget(keys.passage(held["tag"], keys.passage_id("PMC77", 1)),
                          ["text", "title", "section"])
    client.close()
    assert second == [b"Some results.", b"The CSV title", b"Results"]


def test_metadata_is_checked_before_anything_is_written(cluster, cli, tmp_path):
    folder = tmp_path / "meta"
    folder.mkdir()
    (folder / "meta-paper.json").write_text(_cord("meta-paper", [("Text.", "")]))
    as_json = tmp_path / "meta.json"
    as_json.write_text('{"paper_id": "x"}')
    proc = cli(str(folder), "--metadata", str(as_json))
    assert proc.returncode == 2 and f"{as_json}: this is JSON, not a CSV" in proc.stderr
    no_links = tmp_path / "other.csv"
    no_links.write_text("name,year\nfoo,2020\n")
    proc = cli(str(folder), "--metadata", str(no_links))
    assert proc.returncode == 2
    assert (f"{no_links} line 1: metadata CSV has none of the columns that link rows to "
            "documents (sha, pmcid, cord_uid); its header has name, year") in proc.stderr
    assert _held(cluster, "meta-paper")["index"] == []


def test_a_single_cord19_file_loads_and_misread_files_point_to_cord19(cluster, cli, tmp_path):
    paper = tmp_path / "single-paper.json"
    paper.write_text(_cord("single-paper", [("Alone.", "Body")]))
    proc = cli(str(paper))
    assert proc.returncode == 0, proc.stderr
    assert "loaded 1 document, 1 passage into 1 partition" in proc.stdout
    assert "metadata: none (none given with --metadata)" in proc.stdout
    assert _held(cluster, "single-paper")["index"] == [keys.passage_id("single-paper", 0)]
    odd = tmp_path / "odd.json"  # paper_id not first: not guessed, but the error says what to do
    odd.write_text(json.dumps({"body_text": [], "paper_id": "odd"}))
    proc = cli(str(odd))
    assert proc.returncode == 2 and "load it with --format cord19" in proc.stderr
    missing = tmp_path / "cord-missing"
    missing.mkdir()
    (missing / "p.json").write_text('{"body_text": []}')
    proc = cli(str(missing))
    assert proc.returncode == 2
    assert 'p.json field "paper_id": "paper_id" is missing' in proc.stderr


def test_a_removed_document_leaves_no_answer_or_tensors_and_its_worker_handles_it(system, tmp_path):
    doc_id = "vanishing-doc"
    path = tmp_path / "vanish.jsonl"
    path.write_text(json.dumps({"id": doc_id, "title": "Vanishing",
                                "text": "The lighthouse keeper painted the tower bright red."})
                    + "\n")
    qasearch(system, "load", str(path), "--quiet")
    tag, owner = owner_of_doc(system, doc_id)
    pid = keys.passage_id(doc_id, 0)
    node = node_client(owner.host, owner.port, system)
    # 120 s like the other ingest waits: the shared system's worker may still be embedding
    # an earlier test's corpus (a CI-like run on a loaded machine took over 60 s).
    wait_for(lambda: node.exists(keys.tensors(tag, pid)), timeout=120,
             what="the passage's tensors")
    key = keys.answer(tag, pid, "What colour is the tower?")
    node.get(key)
    wait_for(lambda: node.get(key), timeout=120, what="the cached answer")
    path.write_text(json.dumps({"id": doc_id, "text": ""}) + "\n")
    out = qasearch(system, "load", str(path), "--quiet")
    assert "1 document removed with all their passages" in out
    assert not node.exists(key, keys.tensors(tag, pid), keys.passage(tag, pid))
    # The worker takes the passage out of its in-memory index on the op=del entry: wait
    # until its group has been handed that entry and acknowledged it.
    stream = keys.ingest_stream(tag)
    (del_id,) = [e for e, f in node.xrange(stream) if f[b"op"] == b"del" and
                 f[b"pid"] == pid.encode()]

    def handled() -> bool:
        group = next(g for g in node.xinfo_groups(stream) if g["name"] == keys.WORKER_GROUP.encode()
                     or g["name"] == keys.WORKER_GROUP)
        delivered = tuple(int(x) for x in group["last-delivered-id"].split(b"-"))
        return delivered >= tuple(int(x) for x in del_id.split(b"-")) and not group["pending"]
    wait_for(handled, timeout=120, what="the worker to handle the removal")
    assert not node.exists(key, keys.tensors(tag, pid))  # nothing written back for it
