"""Corpus readers and the passage splitter, without a cluster."""

from __future__ import annotations

import json
import random

import pytest

from loaders.documents import LoadError
from loaders.formats import guess_format, read_documents
from loaders.splitter import default_tokenizer, split_document
from qasearch.core.settings import Settings

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
        (b'{"id": "x", "text": 5}', '"text" must be a string ("" empties the document), got a '
                                    'number'),
        (b'{"id": "x"}', '"text" is missing'),
        (b'{"title": "no id", "text": "t"}', '"id" is missing'),
        (b'{"id": null, "text": "t"}', '"id" must be a non-empty string, got null'),
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
    # the whole file is checked first: a malformed SQuAD file yields nothing at all
    with pytest.raises(LoadError, match=r"data\[1\]\.paragraphs\[0\].*context"):
        read_documents(path)
    squad["data"].pop()
    path.write_text(json.dumps(squad))
    assert [(d.doc_id, d.text) for d in read_documents(path)] == [("T#0", "first"),
                                                                  ("T#1", "second")]


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
    (tmp_path / "x.JSONL").write_text("")
    (tmp_path / "notes.md").write_text("")
    assert guess_format(tmp_path / "x.JSONL") == "jsonl"
    with pytest.raises(LoadError, match="--format"):
        read_documents(tmp_path / "notes.md")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "paper.json").write_text("{}")
    assert guess_format(tmp_path) == "cord19"


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


# --- more readers ---------------------------------------------------------------


def test_jsonl_line_over_the_cap_is_an_error_not_a_crash(tmp_path):
    good = json.dumps({"id": "ok", "text": "fine"}).encode()
    path = _jsonl(tmp_path, [good, json.dumps({"id": "big", "text": "x" * 500}).encode(), good])
    docs = read_documents(path, settings=Settings(max_record_bytes=100))
    assert next(docs).doc_id == "ok"
    with pytest.raises(LoadError, match="longer than 100 bytes") as info:
        next(docs)
    assert info.value.location == "line 2"


def test_jsonl_reads_crlf_and_a_last_line_without_newline(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "a", "text": "x"}\r\n\r\n{"id": "b", "text": "y"}')
    assert [d.doc_id for d in read_documents(path)] == ["a", "b"]


def test_squad_skips_repeated_contexts_and_keeps_ids_unique(tmp_path):
    squad = {"version": "v2.0", "data": [
        {"title": "T", "paragraphs": [{"context": "one", "qas": []},
                                       {"context": "two", "qas": []},
                                       {"context": "one", "qas": []}]},
        {"title": "T", "paragraphs": [{"context": "three", "qas": []}]},
        {"paragraphs": [{"context": "four", "qas": []}]},
    ]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(squad))
    docs = list(read_documents(path))
    assert [(d.doc_id, d.text) for d in docs] == [
        ("T#0", "one"), ("T#1", "two"), ("T#3", "three"), ("untitled#0", "four")]
    assert docs[-1].title == ""


@pytest.mark.parametrize(
    "data, location",
    [
        ({"data": [{"title": "T", "paragraphs": ["not an object"]}]},
         "record data[0].paragraphs[0]"),
        ({"data": [{"title": "T"}]}, "record data[0]"),
        ({"data": [{"title": 3, "paragraphs": []}]}, "record data[0]"),
        ({"version": "1.1"}, ""),
    ],
)
def test_squad_structure_errors_name_the_record(tmp_path, data, location):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LoadError) as info:
        list(read_documents(path, "squad"))
    assert info.value.location == location and info.value.path == str(path)


def test_truncated_squad_names_the_line(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"data": [\n{"title": "T",\n"paragraphs": [')
    with pytest.raises(LoadError) as info:
        list(read_documents(path))
    assert info.value.location.startswith("line 3")


def test_cord19_titles_from_csv_first_then_the_parse_by_sha_or_pmcid(tmp_path):
    (tmp_path / "pdf_json").mkdir()
    (tmp_path / "pmc_json").mkdir()
    (tmp_path / "pdf_json" / "a.json").write_text(
        json.dumps(_cord_doc("sha1", [{"text": "Body.", "section": "Intro"}], title="Own")))
    (tmp_path / "pdf_json" / "b.json").write_text(json.dumps(_cord_doc("sha2", [{"text": "B"}])))
    (tmp_path / "pmc_json" / "c.json").write_text(json.dumps(_cord_doc("PMC9", [{"text": "C"}])))
    (tmp_path / "pdf_json" / "d.json").write_text(json.dumps(
        {"paper_id": "empty", "abstract": [], "body_text": [{"text": "  "}]}))
    meta = tmp_path / "elsewhere.csv"
    meta.write_text('cord_uid,sha,pmcid,title,abstract\n'
                    'u1,sha1,,From the CSV,x\n'
                    'u2,sha0; sha2,,"Second, with comma",' + "y" * 200_000 + '\n'
                    'u3,,PMC9,Third,z\n')
    docs = {d.doc_id: d for d in read_documents(tmp_path, "cord19", metadata=meta)}
    assert sorted(docs) == ["PMC9", "empty", "sha1", "sha2"]
    assert docs["empty"].text == ""  # empty: loading it removes what the id held
    assert docs["sha1"].title == "From the CSV"
    assert docs["sha2"].title == "Second, with comma"
    assert docs["PMC9"].title == "Third"
    assert docs["sha2"].source == "b.json"


def test_cord19_missing_metadata_file_is_named(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(_cord_doc("p", [{"text": "t"}])))
    with pytest.raises(LoadError, match="cannot read metadata") as info:
        list(read_documents(tmp_path, "cord19", metadata=tmp_path / "nope.csv"))
    assert info.value.path.endswith("nope.csv")


def test_cord19_invalid_utf8_and_non_object(tmp_path):
    (tmp_path / "a.json").write_bytes(b'{"paper_id": "\xff"}')
    with pytest.raises(LoadError, match="UTF-8"):
        list(read_documents(tmp_path))
    (tmp_path / "a.json").write_text("[1, 2]")
    with pytest.raises(LoadError, match="JSON object"):
        list(read_documents(tmp_path))


def test_plain_text_ids_keep_subfolders_apart_and_text_is_untouched(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.txt").write_text("  First\nline two\n\n\n")
    (tmp_path / "b" / "x.txt").write_text("Other")
    (tmp_path / "b" / "blank.txt").write_text(" \n ")
    docs = list(read_documents(tmp_path))
    assert [(d.doc_id, d.title, d.text) for d in docs] == [
        ("a/x", "First", "  First\nline two\n\n\n"), ("b/blank", "", ""),  # empties its id
        ("b/x", "Other", "Other")]
    (single,) = read_documents(tmp_path / "b" / "x.txt")
    assert single.doc_id == "x"


def test_plain_text_invalid_utf8_names_the_file(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ok\xffno")
    with pytest.raises(LoadError, match="UTF-8") as info:
        list(read_documents(tmp_path, "text"))
    assert info.value.path.endswith("bad.txt") and info.value.location == "byte 2"


def test_report_names_file_place_and_counts():
    error = LoadError("corpus.jsonl", "line 17", '"text" must be a non-empty string')
    error.loaded, error.passages_loaded = 3, 21
    assert error.report() == ('corpus.jsonl line 17: "text" must be a non-empty string '
                              "(3 documents, 21 passages loaded before this line)")
    assert LoadError("x", "", "no such file or folder").report() == "x: no such file or folder"


# --- more splitting ---------------------------------------------------------------


def _assert_exact_and_bounded(text, passages, max_tokens):
    for i, p in enumerate(passages):
        assert p.chunk == i
        assert text[p.char_start : p.char_start + len(p.text)] == p.text
        assert p.text == p.text.strip() and p.text
        assert len(TOKENIZER.encode(p.text, add_special_tokens=False).ids) <= max_tokens
    starts = [p.char_start for p in passages]
    assert starts == sorted(starts)


def test_split_keeps_every_non_space_character():
    # \x00 and the zero-width space make no token; they must still be in a passage
    text = "Alpha\x00beta gamma.\u200b " * 60 + "\r\n\r\n" + "Tail \x01."
    passages = split_document(text, 16, TOKENIZER)
    _assert_exact_and_bounded(text, passages, 16)
    squeeze = "".join(text.split())
    assert "".join("".join(p.text.split()) for p in passages) == squeeze


def test_split_cuts_after_closing_quotes_and_at_line_breaks():
    quoted = " ".join(f'She said "number {i} is fine." Then' for i in range(30))
    passages = split_document(quoted, 40, TOKENIZER)
    _assert_exact_and_bounded(quoted, passages, 40)
    assert all(p.text.endswith('fine."') for p in passages[:-1])
    lines = "\n".join(f"item {i} of a list without full stops" for i in range(40))
    passages = split_document(lines, 30, TOKENIZER)
    _assert_exact_and_bounded(lines, passages, 30)
    assert all(p.text.endswith("full stops") for p in passages)


def test_split_a_run_without_spaces_is_cut_between_tokens_and_still_fits():
    text = ".".join(["antidisestablishment"] * 120)
    passages = split_document(text, 20, TOKENIZER)
    _assert_exact_and_bounded(text, passages, 20)
    assert "".join(p.text for p in passages) == text


def test_split_cjk_sentences():
    text = "第一句话。第二句话！" * 50
    passages = split_document(text, 30, TOKENIZER)
    _assert_exact_and_bounded(text, passages, 30)
    assert all(p.text.endswith("！") for p in passages)


def test_split_random_texts_keep_the_invariants():
    rng = random.Random(7)
    words = ["the", "Redis", "cluster", "naïve", "über-long", "x", "co-operate", "(see", "note)",
             "3.14", "e.g.", "end.", "why?", "wow!", "\u00e9t\u00e9", "日本", "—", "a\tb", "\x00"]
    for _ in range(30):
        parts = []
        for _ in range(rng.randint(1, 400)):
            parts.append(rng.choice(words))
            parts.append(rng.choice([" ", " ", " ", "\n", "\n\n", "  ", ""]))
        text = "".join(parts)
        max_tokens = rng.choice([8, 13, 50])
        _assert_exact_and_bounded(text, split_document(text, max_tokens, TOKENIZER), max_tokens)


def test_split_paragraphs_are_never_merged_and_short_ones_untouched():
    text = "A.\n\nB.\n\n\n\nC."
    assert [(p.text, p.char_start) for p in split_document(text, 200, TOKENIZER)] == [
        ("A.", 0), ("B.", 4), ("C.", 10)]
    assert split_document("   \n\n  ", 200, TOKENIZER) == []
    with pytest.raises(ValueError):
        split_document("x", 4, TOKENIZER)
