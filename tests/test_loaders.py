"""Corpus readers and the passage splitter, without a cluster."""

from __future__ import annotations

import json

import pytest

from loaders.documents import LoadError
from loaders.formats import guess_format, read_documents
from loaders.splitter import default_tokenizer, split_document

TOKENIZER = default_tokenizer()


def _jsonl(tmp_path, lines: list[bytes]):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_jsonl_reads_documents_and_skips_blank_lines(tmp_path):
    path = _jsonl(tmp_path, [
        json.dumps({"id": "a", "title": "A", "text": "alpha"}).encode(), b"",
        json.dumps({"id": 7, "text": "seven"}).encode(),
    ])
    docs = list(read_documents(path, "jsonl"))
    assert [(d.doc_id, d.title, d.text) for d in docs] == [("a", "A", "alpha"), ("7", "", "seven")]


@pytest.mark.parametrize(
    "bad, message",
    [
        (b'{"id": "x", "text": "t"', "invalid JSON"),
        (b'{"id": "x", "text": 5}', '"text" must be a non-empty string'),
        (b'{"title": "no id", "text": "t"}', '"id" must be a non-empty string'),
        (b'{"id": "x", "text": "t", "title": ["list"]}', '"title" must be a string'),
        (b'["not", "an", "object"]', "expected an object"),
        (b'{"id": "x", "text": "caf\xe9"}', "not valid UTF-8"),
    ],
)
def test_jsonl_errors_name_the_file_and_line(tmp_path, bad, message):
    good = json.dumps({"id": "ok", "text": "fine"}).encode()
    path = _jsonl(tmp_path, [good, good, bad, good])
    docs = read_documents(path, "jsonl")
    assert next(docs).doc_id == "ok" and next(docs).doc_id == "ok"
    with pytest.raises(LoadError) as info:
        next(docs)
    assert info.value.location == "line 3"
    assert str(path) in str(info.value) and message in str(info.value)


def test_squad_contexts_become_documents_and_errors_name_the_record(tmp_path):
    squad = {"version": "1.1", "data": [
        {"title": "T", "paragraphs": [{"context": "first", "qas": []},
                                       {"context": "second", "qas": []}]},
        {"title": "U", "paragraphs": [{"context": 12, "qas": []}]},
    ]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(squad))
    docs = read_documents(path)
    assert [(d.doc_id, d.text) for d in (next(docs), next(docs))] == [("T#0", "first"),
                                                                      ("T#1", "second")]
    with pytest.raises(LoadError, match=r"data\[1\]\.paragraphs\[0\].*context"):
        next(docs)


def test_truncated_squad_is_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"data": [{"title": "T", "paragraphs": [')
    with pytest.raises(LoadError, match="invalid JSON"):
        list(read_documents(path, "squad"))


def _cord_doc(paper_id, body, title=""):
    return {"paper_id": paper_id, "metadata": {"title": title},
            "abstract": [{"text": "Abstract text."}], "body_text": body}


def test_cord19_documents_take_titles_from_metadata_csv(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(_cord_doc("sha1", [{"text": "Body one."}])))
    (tmp_path / "metadata.csv").write_text("cord_uid,sha,title\nu1,sha1,From the CSV\n")
    (doc,) = list(read_documents(tmp_path))
    assert doc.doc_id == "sha1" and doc.title == "From the CSV"
    assert doc.text == "Abstract text.\n\nBody one."


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"paper_id": "p", "abstract": []}', "body_text"),
        ('{"paper_id": "p", "body_text": [{"text": 3}]}', r"body_text\[0\]"),
        ('{"paper_id": "p", "body_text": [', "invalid JSON"),
    ],
)
def test_cord19_errors_name_the_file(tmp_path, content, message):
    (tmp_path / "a.json").write_text(json.dumps(_cord_doc("ok", [{"text": "fine"}])))
    (tmp_path / "b.json").write_text(content)
    docs = read_documents(tmp_path, "cord19")
    assert next(docs).doc_id == "ok"
    with pytest.raises(LoadError, match=message) as info:
        next(docs)
    assert info.value.path.endswith("b.json")


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(LoadError, match="no such file"):
        read_documents(tmp_path / "nope.jsonl")
    with pytest.raises(LoadError, match="unknown format"):
        read_documents(tmp_path, "xml")
    assert guess_format(tmp_path) == "text"


def test_plain_text_files_are_documents(tmp_path):
    (tmp_path / "one.txt").write_text("The title\n\nSome body text.")
    (doc,) = list(read_documents(tmp_path, "text"))
    assert (doc.doc_id, doc.title) == ("one", "The title")


def test_passages_are_exact_slices_bounded_and_never_merged():
    long_paragraph = " ".join(f"Sentence number {i} is here." for i in range(120))
    text = "  Short one.  \n\nShort two.\n \n" + long_paragraph + "\n\nunbrokenword" * 1
    passages = split_document(text, 50, TOKENIZER)
    assert passages[0].text == "Short one." and passages[1].text == "Short two."
    assert len(passages) > 4
    for i, p in enumerate(passages):
        assert p.chunk == i
        assert text[p.char_start : p.char_start + len(p.text)] == p.text
        assert len(TOKENIZER.encode(p.text, add_special_tokens=False).ids) <= 50
    # long paragraphs are cut at sentence ends
    assert all(p.text.endswith(".") for p in passages[2:-1])


def test_a_single_huge_word_is_cut_between_tokens():
    text = "x" * 5000
    passages = split_document(text, 20, TOKENIZER)
    assert "".join(p.text for p in passages) == text
