"""The shared core without Redis: tensor codec round trips and id escaping."""

from __future__ import annotations

import numpy as np
import pytest

from qasearch.core import codec, keys

ODD_IDS = [
    "plain-id.1~x",
    "with_underscore__twice",
    "with space and  two",
    "ünïcødé 文档 🧬",
    "100% sure",
    "a:b:c",
    "{p05}braces}{",
    "%41 looks escaped",
    "",
    "back\\slash/and\ttab\nnewline",
]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int32).reshape(3, 4),
        np.random.default_rng(0).standard_normal(384).astype(np.float32),
        np.array([[1.5, -2.0]], dtype=">f8"),  # big-endian input is stored little-endian
        np.zeros((0, 2), dtype=np.int64),
        np.array(7, dtype=np.uint16),  # 0-d keeps its shape
        np.array([True, False]),
        np.arange(6, dtype=np.int32).reshape(2, 3).T,  # not C-contiguous
    ],
)
def test_codec_roundtrip(array):
    back = codec.decode(codec.encode(array))
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("<")
    assert np.array_equal(back, array)


def test_codec_rejects_garbage():
    blob = codec.encode(np.arange(4, dtype=np.int32))
    with pytest.raises(ValueError):
        codec.decode(b"nope" + blob)
    with pytest.raises(ValueError):
        codec.decode(blob[:-1])
    with pytest.raises(TypeError):
        codec.encode(np.array(["text"]))


@pytest.mark.parametrize("raw", ODD_IDS)
def test_escape_roundtrip_and_alphabet(raw):
    escaped = keys.escape_id(raw)
    assert keys.unescape_id(escaped) == raw
    assert not set(escaped) & set("_: {}\t\n")
    assert all(c.isascii() for c in escaped)


@pytest.mark.parametrize("raw", ODD_IDS)
def test_passage_id_parses_back(raw):
    pid = keys.passage_id(raw, 3)
    assert keys.doc_of_passage(pid) == raw
    assert pid.count(":") == 1
    assert keys.passage("p05", pid).startswith("qa:passage{p05}:")


def test_escape_is_injective_on_lookalikes():
    assert len({keys.escape_id(x) for x in ["a b", "a%20b", "a_b", "a%5Fb"]}) == 4
