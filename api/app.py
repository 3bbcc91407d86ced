"""The gateway: ``POST /qasearch`` fans a question out to every shard and merges the answers.

Routes:
    GET  /           the web page, a client of POST /qasearch (api/page.py, api/static/)
    POST /qasearch   {"search": str, "num_results": int = 5, "top_k": int, "timeout_ms": int,
                      "cache": bool = true, "passages": bool = false}
    GET  /healthz    the process is up
    GET  /readyz     every partition is served by a live, ready worker (else 503 + reasons)
    GET  /metrics    Prometheus metrics of all gunicorn workers (see api/metrics.py)
    GET  /openapi.json  the OpenAPI description of these routes (api/openapi.py)
"""

from __future__ import annotations

import threading
import time

import redis
from flask import Flask, Response, jsonify, request
from redis.backoff import NoBackoff
from redis.retry import Retry

from api import guards, metrics, openapi, page, readiness
from api.embedding import NoModel, QuestionEmbedder
from api.fanout import Fanout
from api.response_cache import ResponseCache
from api.search import TwoPhaseSearch
from api.validation import BadRequest, parse_query
from qasearch.core import keys
from qasearch.core.settings import Settings, load_settings
from qasearch.core.topology import cluster_client

PASSAGE_FIELDS = ("doc_id", "sentencekey", "partition", "similarity", "lexical", "retrieval",
                  "answer", "score", "null_score", "replica")
CANDIDATE_FIELDS = ("partition", "pid", "dense", "lexical", "retrieval")

UNTRAINED_WARNING = (
    "the reader's QA head is untrained (offline MiniLM): spans are not real answers; "
    "push a trained extractive-QA checkpoint with `qasearch model push`"
)


def no_answer(results: list[dict], read: list[dict]) -> tuple[bool, float | None]:
    """Whether nothing read answers the question, and the null score that says so.

    The passages read are taken as the windows of one context, as the QA pipeline's
    ``handle_impossible_answer`` takes a long context's windows: the null score is the
    lowest over them, and "no answer" wins when it is above the best answer's span
    score (its reader score, not the score interpolated with retrieval).
    """
    nulls = [p["null_score"] for p in read if p.get("null_score") is not None]
    null = min(nulls) if nulls else None
    if not results:
        return True, null
    return null is not None and null > results[0]["reader_score"], null


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask("qasearch")
    guards.install(app, settings)  # API key (when set) and body limit, before any route
    fanout = Fanout(settings)
    search = TwoPhaseSearch(settings, fanout)
    embedder = QuestionEmbedder(settings)
    embedder.preload(fanout)
    # one quick retry at most: cache and metadata reads must not eat the deadline
    cluster = cluster_client(settings, retry=Retry(NoBackoff(), 1), socket_connect_timeout=1)
    responses = ResponseCache(cluster, settings.response_ttl_s)
    inflight = threading.BoundedSemaphore(settings.max_inflight)
    metrics.instrument(app, cluster)  # counts and times every route; serves GET /metrics

    @app.post("/qasearch")
    def qasearch() -> tuple[Response, int]:
        # A bounded number of requests in flight per gateway process: past it, say
        # "come back shortly" at once instead of letting every latency grow.
        if not inflight.acquire(blocking=False):
            response, status = _error(503, "overloaded: too many requests in flight")
            response.headers["Retry-After"] = "1"
            return response, status
        try:
            return answer_request()
        finally:
            inflight.release()

    known_partitions = [0]

    def corpus_partitions() -> int:
        """The corpus's partition count, to name what a failed shard leaves out; it is
        fixed at the first load, so the last value read serves while a node is down."""
        if known_partitions[0]:
            return known_partitions[0]
        try:
            known_partitions[0] = int(cluster.hget(keys.CORPUS_META, "partitions") or 0)
        except redis.RedisError:
            pass
        return known_partitions[0]

    def current_model():
        """The served model, asked of the first master that answers."""
        error: Exception = NoModel("no master answers")
        for master in fanout.masters():
            try:
                return embedder.current(master)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                error = exc
        raise error

    def answer_request() -> tuple[Response, int]:
        started = time.perf_counter()
        try:
            query = parse_query(request.get_data(cache=False), settings)
        except BadRequest as exc:
            return _error(400, str(exc))
        try:
            model = current_model()
        except NoModel as exc:
            return _error(503, str(exc))
        except (redis.RedisError, OSError, IndexError) as exc:
            return _error(503, f"cluster unavailable: {exc}")
        cache_key = None
        if query.cache:
            try:
                cache_key = responses.key(
                    query.search, query.num_results, query.top_k, model.version,
                    query.passages,
                )
            except redis.RedisError:
                cache_key = None
            cached = responses.get(cache_key) if cache_key else None
            if cached is not None:
                cached["cached"] = True
                cached["took_ms"] = round((time.perf_counter() - started) * 1000.0, 2)
                return jsonify(cached), 200
        with metrics.EMBEDDER_SECONDS.time():
            vector = model.embed([query.search])[0]
        deadline = time.monotonic() + query.timeout_ms / 1000.0 - (time.perf_counter() - started)
        partitions = corpus_partitions()
        found = search.run(query.search, vector, model.embedder_id, query.top_k, query.cache,
                           partitions, deadline)
        results = found.answers[: query.num_results]
        unanswered, null_score = no_answer(results, found.read)
        shards = {
            "total": found.asked, "answered": found.answered, "failed": found.failed,
            "standby": found.standby,
            "partitions": {"total": partitions, "answered": partitions - len(found.missing),
                           "missing": found.missing},
        }
        body = {
            "search": query.search,
            "results": results,
            "took_ms": round((time.perf_counter() - started) * 1000.0, 2),
            "shards": shards,
            "model": {"version": model.version, "trained": model.trained},
            "no_answer": unanswered,
            "null_score": null_score,
            "passages_read": len(found.read),
        }
        if query.passages:
            body["passages"] = [{k: p.get(k) for k in PASSAGE_FIELDS} for p in found.read]
            body["retrieved"] = [{k: c.get(k) for k in CANDIDATE_FIELDS}
                                 for c in found.candidates]
        if found.versions - {model.version}:
            body["model"]["shard_versions"] = sorted(found.versions)
        if not model.trained:
            body["warning"] = UNTRAINED_WARNING
        complete = not found.failed and not found.missing
        # a response read from a replica's copy is not kept: the master may hold newer data
        fresh = complete and not found.standby and not found.versions - {model.version}
        if cache_key and fresh:
            responses.put(cache_key, body)
        body["cached"] = False
        return jsonify(body), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify({"status": "ok"}), 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        try:
            ready, reasons, detail = readiness.check(settings, fanout, cluster)
        except (redis.RedisError, OSError) as exc:
            return jsonify({"ready": False, "reasons": [f"cluster unavailable: {exc}"]}), 503
        return jsonify({"ready": ready, "reasons": reasons, "nodes": detail}), (
            200 if ready else 503
        )

    page.register(app)
    openapi.register(app, settings)

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> tuple[Response, int]:
        return _error(404, "not found; POST /qasearch with {\"search\": \"...\"}")

    @app.errorhandler(405)
    def not_allowed(_exc: Exception) -> tuple[Response, int]:
        return _error(405, "method not allowed")

    return app
