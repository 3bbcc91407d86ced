"""Request validation of POST /qasearch (the HTTP-level behaviour is in test_end_to_end)."""

from __future__ import annotations

import pytest

from api.validation import BadRequest, parse_query
from qasearch.core.settings import Settings

S = Settings()


def test_defaults_and_trimming():
    q = parse_query(b'{"search": "  what is x?  "}', S)
    assert (q.search, q.num_results) == ("what is x?", 5)
    assert (q.top_k, q.timeout_ms) == (S.top_k, S.deadline_ms)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", '"search" is required'),
        (b'{"search": 5}', '"search" is required'),
        (b'{"search": "   "}', "must not be empty"),
        (b'{"search": "x", "num_results": 0}', '"num_results" must be between'),
        (b'{"search": "x", "num_results": 101}', '"num_results" must be between'),
        (b'{"search": "x", "num_results": "3"}', '"num_results" must be an integer'),
        (b'{"search": "x", "num_results": true}', '"num_results" must be an integer'),
        (b'{"search": "x", "top_k": 0}', '"top_k" must be between'),
        (b'{"search": "x", "colour": "red"}', "unknown field"),
        (b'{"search": "why \\ud800?"}', "unpaired surrogate"),
        (b'{"search": "x", "top_k": ' + b"9" * 5000 + b"}", "not usable JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"search": "x", "timeout_ms": 120001}', '"timeout_ms" must be between 1 and 120000'),
        (b'{"search": "x", "top_k": 51}', '"top_k" must be between 1 and 50'),
    ],
)
def test_bad_requests_say_what_is_wrong(body, message):
    with pytest.raises(BadRequest, match=message):
        parse_query(body, S)


def test_question_length_limit():
    with pytest.raises(BadRequest, match="longer than"):
        parse_query(('{"search": "' + "a" * (S.max_question_chars + 1) + '"}').encode(), S)
