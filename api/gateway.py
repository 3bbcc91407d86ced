"""The gateway object: what its routes share, and one method per route.

A :class:`Gateway` holds the fan-out to the shards, the two-phase search, the
question embedder, the cluster client for metadata and the response cache, the
in-flight limit and the settings. Each route is one method that answers the
request Flask is serving; :func:`api.app.create_app` only builds the object and
wires those methods to their URLs. One object serves every thread of a gunicorn
worker process, so what it keeps is either read-only after ``__init__`` or safe
to share (the semaphore, the clients, caches whose races only repeat a read).
"""

from __future__ import annotations

import threading
import time

import redis
from flask import Response, current_app, jsonify, request
from redis.backoff import NoBackoff
from redis.retry import Retry

from api import metrics, openapi, page, readiness
from api.embedding import NoModel, QuestionEmbedder
from api.fanout import Fanout
from api.guards import json_error
from api.response_cache import ResponseCache
from api.search import Outcome, TwoPhaseSearch
from api.validation import BadRequest, QueryRequest, parse_query
from qasearch.core import keys
from qasearch.core import no_answer as no_answer_rule
from qasearch.core.models import LoadedModel
from qasearch.core.settings import Settings
from qasearch.core.topology import cluster_client

PASSAGE_FIELDS = ("doc_id", "sentencekey", "partition", "similarity", "lexical", "retrieval",
                  "answer", "score", "null_score", "replica")
CANDIDATE_FIELDS = ("partition", "pid", "dense", "lexical", "retrieval")

UNTRAINED_WARNING = (
    "the reader's QA head is untrained (offline MiniLM): spans are not real answers; "
    "push a trained extractive-QA checkpoint with `qasearch model push`"
)


def no_answer(results: list[dict], threshold: float) -> tuple[bool, float | None]:
    """Whether the best answer loses to "no answer", and the null score it lost to.

    The rule of :mod:`qasearch.core.no_answer`: the best answer's span score against the
    null score of the passage it came from, at the served reader's ``threshold``.
    Nothing found at all is "no answer" too.
    """
    if not results:
        return True, None
    best = results[0]
    null = best.get("null_score")
    return no_answer_rule.says_no_answer(best["reader_score"], null, threshold), null


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


class Gateway:
    """The gateway of one process: its shared state, and a method per route."""

    def __init__(self, settings: Settings) -> None:
        """Connect to the cluster and load the question embedder of the served model."""
        self.settings = settings
        self.fanout = Fanout(settings)
        self.search = TwoPhaseSearch(settings, self.fanout)
        self.embedder = QuestionEmbedder(settings)
        self.embedder.preload(self.fanout)
        # one quick retry at most: cache and metadata reads must not eat the deadline
        self.cluster = cluster_client(settings, retry=Retry(NoBackoff(), 1),
                                      socket_connect_timeout=1)
        self.responses = ResponseCache(self.cluster, settings.response_ttl_s)
        self.inflight = threading.BoundedSemaphore(settings.max_inflight)
        self.static_files = page.shipped_files()  # read once: nothing added later is served
        self._partitions = 0  # the corpus's partition count, once read
        self._openapi: dict | None = None  # built at its first request, when every route is known

    # -- routes ------------------------------------------------------------------------

    def page(self) -> Response:
        """``GET /``: the web page (api/page.py)."""
        return page.index()

    def page_file(self, name: str) -> Response:
        """``GET /static/<name>``: the page's script and style; 404 for anything else."""
        return page.static_file(name, self.static_files)

    def qasearch(self) -> tuple[Response, int]:
        """``POST /qasearch``: 200 with the ranked answers (partial when shards failed,
        never late), 400 for a bad body, 503 when overloaded (``Retry-After: 1``), when
        no model is served or when the cluster cannot be reached."""
        # A bounded number of requests in flight per gateway process: past it, say
        # "come back shortly" at once instead of letting every latency grow.
        if not self.inflight.acquire(blocking=False):
            response, status = json_error(503, "overloaded: too many requests in flight")
            response.headers["Retry-After"] = "1"
            return response, status
        try:
            return self.answer(request.get_data(cache=False))
        finally:
            self.inflight.release()

    def healthz(self) -> tuple[Response, int]:
        """``GET /healthz``: 200 while the process is up; it asks nothing of the cluster."""
        return jsonify({"status": "ok"}), 200

    def readyz(self) -> tuple[Response, int]:
        """``GET /readyz``: 200 when every partition has a live, ready worker with a
        model, else 503 with the reasons (api/readiness.py)."""
        try:
            ready, reasons, detail = readiness.check(self.settings, self.fanout, self.cluster)
        except (redis.RedisError, OSError) as exc:
            return jsonify({"ready": False, "reasons": [f"cluster unavailable: {exc}"]}), 503
        return jsonify({"ready": ready, "reasons": reasons, "nodes": detail}), (
            200 if ready else 503
        )

    def metrics(self) -> Response:
        """``GET /metrics``: Prometheus metrics of all gunicorn workers (api/metrics.py)."""
        return metrics.exposition(self.cluster)

    def openapi_json(self) -> tuple[Response, int]:
        """``GET /openapi.json``: the OpenAPI description of the app's routes (api/openapi.py)."""
        if self._openapi is None:
            self._openapi = openapi.for_app(current_app, self.settings)
        return jsonify(self._openapi), 200

    def not_found(self, _exc: Exception) -> tuple[Response, int]:
        """404 for a path without a route, naming the one route that answers questions."""
        return json_error(404, "not found; POST /qasearch with {\"search\": \"...\"}")

    def not_allowed(self, _exc: Exception) -> tuple[Response, int]:
        """405 for a route asked with a method it does not take."""
        return json_error(405, "method not allowed")

    # -- answering a question ----------------------------------------------------------

    def answer(self, raw: bytes) -> tuple[Response, int]:
        """The response to one ``POST /qasearch`` body ``raw``, within its deadline."""
        started = time.perf_counter()
        try:
            query = parse_query(raw, self.settings)
        except BadRequest as exc:
            return json_error(400, str(exc))
        try:
            model = self.current_model()
        except NoModel as exc:
            return json_error(503, str(exc))
        except (redis.RedisError, OSError, IndexError) as exc:
            return json_error(503, f"cluster unavailable: {exc}")
        cache_key = self.cache_key(query, model) if query.cache else None
        cached = self.responses.get(cache_key) if cache_key else None
        if cached is not None:
            cached["cached"] = True
            cached["took_ms"] = _ms_since(started)
            return jsonify(cached), 200
        with metrics.EMBEDDER_SECONDS.time():
            vector = model.embed([query.search])[0]
        # the deadline counts from the request's start: parsing and embedding spent some
        deadline = time.monotonic() + query.timeout_ms / 1000.0 - (time.perf_counter() - started)
        partitions = self.corpus_partitions()
        found = self.search.run(query.search, vector, model.embedder_id, query.top_k,
                                query.cache, partitions, deadline)
        body = self.body(query, model, found, partitions, started)
        if cache_key and self.cacheable(found, model):
            self.responses.put(cache_key, body)
        body["cached"] = False
        return jsonify(body), 200

    def current_model(self) -> LoadedModel:
        """The served model, asked of the first master that answers."""
        failure: Exception = NoModel("no master answers")
        for master in self.fanout.masters():
            try:
                return self.embedder.current(master)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                failure = exc
        raise failure

    def corpus_partitions(self) -> int:
        """The corpus's partition count, to name what a failed shard leaves out; it is
        fixed at the first load, so the last value read serves while a node is down."""
        if self._partitions:
            return self._partitions
        try:
            self._partitions = int(self.cluster.hget(keys.CORPUS_META, "partitions") or 0)
        except redis.RedisError:
            pass
        return self._partitions

    def cache_key(self, query: QueryRequest, model: LoadedModel) -> str | None:
        """The response cache's key for ``query`` under ``model``; None when it cannot
        be made (the corpus version is unreadable), and the response is not cached."""
        try:
            return self.responses.key(query.search, query.num_results, query.top_k,
                                      model.version, query.passages)
        except redis.RedisError:
            return None

    def cacheable(self, found: Outcome, model: LoadedModel) -> bool:
        """Whether a response may be kept: every shard answered, every partition was
        covered, and all from the masters serving ``model``'s version."""
        complete = not found.failed and not found.missing
        # a response read from a replica's copy is not kept: the master may hold newer data
        return complete and not found.standby and not found.versions - {model.version}

    def body(self, query: QueryRequest, model: LoadedModel, found: Outcome, partitions: int,
             started: float) -> dict:
        """The 200 body (without ``cached``) for what the two phases ``found``."""
        results = found.answers[: query.num_results]
        threshold = no_answer_rule.served_threshold(self.settings.no_answer_threshold,
                                                    model.manifest.get("reader", {}))
        unanswered, null_score = no_answer(found.answers, threshold)
        body = {
            "search": query.search,
            "results": results,
            "took_ms": _ms_since(started),
            "shards": self.shards(found, partitions),
            "model": {"version": model.version, "trained": model.trained,
                      "no_answer_threshold": threshold},
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
        return body

    def shards(self, found: Outcome, partitions: int) -> dict:
        """The body's ``shards``: who was asked, who answered, failed or stood in, and
        which partitions no shard covered."""
        return {
            "total": found.asked, "answered": found.answered, "failed": found.failed,
            "standby": found.standby,
            "partitions": {"total": partitions, "answered": partitions - len(found.missing),
                           "missing": found.missing},
        }
