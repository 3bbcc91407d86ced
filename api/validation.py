"""Validation of ``POST /qasearch`` bodies: every mistake becomes a 400 that says what is wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass

from qasearch.core.settings import Settings

DEFAULT_NUM_RESULTS = 5


class BadRequest(ValueError):
    """The request cannot be served as sent; the message is shown to the caller."""


@dataclass(frozen=True)
class QueryRequest:
    search: str
    num_results: int
    top_k: int
    timeout_ms: int
    cache: bool = True
    passages: bool = False  # list the passages read in the response


def _int_field(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f'"{name}" must be an integer between {low} and {high}')
    if not low <= value <= high:
        raise BadRequest(f'"{name}" must be between {low} and {high}, got {value}')
    return value


def default_num_results(settings: Settings) -> int:
    """Answers returned when the request does not say: 5, or fewer if the limit is lower."""
    return min(DEFAULT_NUM_RESULTS, settings.max_num_results)


def default_top_k(settings: Settings) -> int:
    """Passages read when the request does not say: ``top_k``, or fewer if the limit is lower."""
    return min(settings.top_k, settings.max_top_k)


def parse_query(raw: bytes, settings: Settings) -> QueryRequest:
    """Parse and check a request body; raises :class:`BadRequest`."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise BadRequest(f"body is not usable JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("body is not usable JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object like {\"search\": \"...\"}")
    unknown = sorted(set(body) - {"search", "num_results", "top_k", "timeout_ms", "cache",
                                  "passages"})
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    search = body.get("search")
    if not isinstance(search, str):
        raise BadRequest('"search" is required and must be a string')
    search = search.strip()
    if not search:
        raise BadRequest('"search" must not be empty')
    try:
        search.encode("utf-8")
    except UnicodeEncodeError:  # JSON allows "\ud800"; Redis keys and the tokenizer do not
        raise BadRequest('"search" holds an unpaired surrogate escape, not Unicode text') from None
    if len(search) > settings.max_question_chars:
        raise BadRequest(f'"search" is longer than {settings.max_question_chars} characters')
    cache, passages = body.get("cache", True), body.get("passages", False)
    for name, value in (("cache", cache), ("passages", passages)):
        if not isinstance(value, bool):
            raise BadRequest(f'"{name}" must be true or false')
    return QueryRequest(
        cache=cache,
        passages=passages,
        search=search,
        num_results=_int_field(body, "num_results", default_num_results(settings), 1,
                               settings.max_num_results),
        top_k=_int_field(body, "top_k", default_top_k(settings), 1, settings.max_top_k),
        timeout_ms=_int_field(body, "timeout_ms", settings.deadline_ms, 1,
                              settings.max_timeout_ms),
    )
