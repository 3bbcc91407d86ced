"""The gateway's OpenAPI 3.0 description, served at ``GET /openapi.json``.

Written by hand to say exactly what the routes in :mod:`api.app` accept and answer
(tests/test_openapi.py runs schemathesis against the real gunicorn gateway to keep
it so). Limits come from the running gateway's settings, so the document states the
bounds this gateway enforces. ``/metrics`` is described when the app has that route.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from api.validation import default_num_results, default_top_k
from qasearch.core.apiclient import API_KEY_HEADER
from qasearch.core.settings import Settings

ROUTE = "/openapi.json"
JSON = "application/json"
HTML = "text/html"


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description,
                                "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": required if required is not None else sorted(properties)}


def _schemas(settings: Settings) -> dict:
    string, integer, number = {"type": "string"}, {"type": "integer"}, {"type": "number"}
    nullable_number = {**number, "nullable": True}
    strings = {"type": "array", "items": string}
    return {
        "Error": _object({"error": {**string, "description": "what is wrong"}}),
        "QueryRequest": _object({
            "search": {**string, "minLength": 1, "maxLength": settings.max_question_chars,
                       "pattern": r"\S", "description": "the question (trimmed; not blank)"},
            "num_results": {**integer, "minimum": 1, "maximum": settings.max_num_results,
                            "default": default_num_results(settings)},
            "top_k": {**integer, "minimum": 1, "maximum": settings.max_top_k,
                      "default": default_top_k(settings),
                      "description": "passages read, over the whole corpus: the best "
                                     "top_k by retrieval score of every shard's candidates"},
            "timeout_ms": {**integer, "minimum": 1, "maximum": settings.max_timeout_ms,
                           "default": settings.deadline_ms,
                           "description": "deadline of the whole request"},
            "cache": {"type": "boolean", "default": True,
                      "description": "false bypasses the answer and response caches"},
            "passages": {"type": "boolean", "default": False,
                         "description": "true lists the passages read and the "
                                        "retrieval candidates in the response"},
        }, required=["search"]),
        "Answer": _object({
            "answer": {**string, "description": "sentence[start:end]"},
            "score": {**number, "description": "(1 - answer_weight) x retrieval_score + "
                      "answer_weight x reader_score, the ranking's key"},
            "reader_score": {**number, "description": "the span's P(start) x P(end)"},
            "retrieval_score": {**number, "description": "the passage's fused retrieval "
                                "score in [0, 1]"},
            "lexical": {**nullable_number, "description": "the passage's BM25 score (null "
                        "when not among its shard's BM25 best)"},
            "start": {**integer, "minimum": 0},
            "end": {**integer, "minimum": 0}, "sentence": string, "sentencekey": string,
            "title": string, "doc_id": string, "partition": string,
            "similarity": {**number, "description": "cosine similarity to the question"},
            "section": {**string, "description": "the passage's section title (CORD-19), or \"\""},
            "answerkey": {**string, "description": "the answer's cache key in Redis"},
            "null_score": {**nullable_number,
                           "description": "the reader's no-answer score on this passage"},
            "replica": {"type": "boolean", "description": "true when read by the standby "
                        "worker beside a replica, its master being unreachable or late"},
        }, required=["answer", "score", "reader_score", "retrieval_score", "start", "end",
                     "sentence", "sentencekey", "title", "doc_id", "partition", "similarity",
                     "answerkey"]),
        "PassageRead": _object({
            "doc_id": string, "sentencekey": string, "partition": string,
            "similarity": number, "lexical": nullable_number, "retrieval": number,
            "answer": {**string, "nullable": True, "description": "its best span"},
            "score": {**nullable_number, "description": "the span's reader score"},
            "null_score": nullable_number, "replica": {"type": "boolean"},
        }),
        "Candidate": _object({
            "partition": string, "pid": string, "dense": number, "lexical": nullable_number,
            "retrieval": number,
        }),
        "FailedShard": _object({
            "node": string, "reason": string,
            "phase": {"type": "string", "enum": ["retrieve", "read"]},
            "partitions": {**strings, "description": "partitions whose answers are missing"},
        }),
        "StandbyShard": _object({
            "node": {**string, "description": "the master that could not answer in time"},
            "replica": {**string, "description": "the replica whose standby answered"},
            "phase": {"type": "string", "enum": ["retrieve", "read"]},
        }),
        "QueryResponse": _object({
            "search": string,
            "results": {"type": "array", "items": _ref("Answer")},
            "took_ms": {**number, "minimum": 0},
            "shards": _object({
                "total": {**integer, "minimum": 0}, "answered": {**integer, "minimum": 0},
                "failed": {"type": "array", "items": _ref("FailedShard")},
                "standby": {"type": "array", "items": _ref("StandbyShard"),
                            "description": "shards answered from a replica's copy"},
                "partitions": _object({
                    "total": {**integer, "minimum": 0}, "answered": {**integer, "minimum": 0},
                    "missing": {**strings, "description": "partitions no shard covered"},
                }),
            }, required=["total", "answered", "failed"]),
            "model": _object({
                "version": string, "trained": {"type": "boolean"},
                "no_answer_threshold": {**number, "description": "no_answer is true when "
                                        "log(null_score) - log(reader_score) of the best "
                                        "answer is above this"},
                "shard_versions": {**strings, "description": "present while shards disagree"},
            }, required=["version", "trained"]),
            "warning": {**string, "description": "present when the QA head is untrained"},
            "cached": {"type": "boolean"},
            "no_answer": {"type": "boolean", "description": "true when the best answer's "
                          "log(null_score) - log(reader_score) is above the model's "
                          "no_answer_threshold (or nothing was found): the reader says "
                          "nothing read answers the question; results are still listed"},
            "null_score": {**nullable_number, "description": "the null score of the best "
                           "answer's passage"},
            "passages_read": {**integer, "minimum": 0},
            "passages": {"type": "array", "items": _ref("PassageRead"),
                         "description": "with \"passages\": true; best retrieval first"},
            "retrieved": {"type": "array", "items": _ref("Candidate"),
                          "description": "with \"passages\": true: every shard's phase-1 "
                                         "candidates, best retrieval first"},
        }, required=["search", "results", "took_ms", "shards", "model", "cached"]),
        "Health": _object({"status": {"type": "string", "enum": ["ok"]}}),
        "Readiness": _object({
            "ready": {"type": "boolean"}, "reasons": strings,
            "nodes": {"type": "array", "items": _object({
                "node": string, "partitions": strings,
                "model": {**string, "nullable": True}, "ok": {"type": "boolean"},
            })},
        }, required=["ready", "reasons"]),
    }


def document(settings: Settings, with_metrics: bool = False) -> dict:
    """The OpenAPI document for a gateway running with ``settings``."""
    error = _ref("Error")
    query: dict[str, Any] = {
        "summary": "Answer a question from the corpus",
        "description": "Asks every master's worker for its best candidate passages, "
                       "reads the best top_k of them on the nodes that hold them, and "
                       "returns the answers best first; shards that failed or missed the "
                       "deadline are listed in shards.failed.",
        "operationId": "qasearch",
        "requestBody": {"required": True,
                        "content": {JSON: {"schema": _ref("QueryRequest")}}},
        "responses": {
            "200": _json(_ref("QueryResponse"), "ranked answers"),
            "400": _json(error, "the body is not a valid request (the message says why)"),
            "413": _json(error, f"body larger than {settings.max_body_bytes} bytes"),
            "503": _json(error, "overloaded (with Retry-After), no model, or cluster down",
                         headers={"Retry-After": {"schema": {"type": "string"},
                                                  "description": "when overloaded"}}),
        },
    }
    if settings.api_key:
        query["security"] = [{"ApiKey": []}, {"Bearer": []}]
        query["responses"]["401"] = _json(error, "missing or wrong API key")
    paths: dict[str, Any] = {
        "/": {"get": {
            "summary": "The web page: ask a question in a browser (a client of POST /qasearch)",
            "operationId": "page",
            "responses": {"200": {"description": "the page (its script and style are "
                                                 "under /static/)",
                                  "content": {HTML: {"schema": {"type": "string"}}}}},
        }},
        "/qasearch": {"post": query},
        "/healthz": {"get": {
            "summary": "The gateway process is up", "operationId": "healthz",
            "responses": {"200": _json(_ref("Health"), "up")},
        }},
        "/readyz": {"get": {
            "summary": "Every partition has a live, ready worker with a model",
            "operationId": "readyz",
            "responses": {"200": _json(_ref("Readiness"), "ready"),
                          "503": _json(_ref("Readiness"), "not ready, with the reasons")},
        }},
        ROUTE: {"get": {
            "summary": "This document", "operationId": "openapi",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0 document")},
        }},
    }
    if with_metrics:
        paths["/metrics"] = {"get": {
            "summary": "Prometheus metrics (text exposition format)", "operationId": "metrics",
            "responses": {"200": {"description": "metrics",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }}
    return {
        "openapi": "3.0.3",
        "info": {"title": "qasearch gateway", "version": "1",
                 "description": "Extractive question answering served from a Redis Cluster."},
        "paths": paths,
        "components": {
            "schemas": _schemas(settings),
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def for_app(app: Flask, settings: Settings) -> dict:
    """:func:`document` for the routes ``app`` has (so build it once they are all there)."""
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    return document(settings, with_metrics="/metrics" in routes)
