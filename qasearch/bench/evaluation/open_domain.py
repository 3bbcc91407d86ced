"""Open-domain scoring: every question through the running gateway, caches off.

The file's paragraphs must be loaded as the corpus (``qasearch load FILE``): a
question's gold paragraph is the document its context was loaded under
(:mod:`qasearch.bench.evaluation.squadfile`), and a passage read is gold when its
``doc_id`` is that document (a paragraph over max_passage_tokens is several
passages of one document). Each request asks for the passages read
(``"passages": true``), so recall@k of the gold paragraph among them is measured
on what the workers really read. Requests go one at a time, each with its own
deadline; the loop is bounded by the number of questions.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from redis.exceptions import RedisClusterException

from qasearch.bench.evaluation import sweep
from qasearch.bench.evaluation.metric import aggregate, score
from qasearch.bench.evaluation.squadfile import EvalQuestion
from qasearch.bench.timing import Summary
from qasearch.core import apiclient, keys, no_answer
from qasearch.core.partitions import partition_for_doc, partition_tag
from qasearch.core.settings import Settings
from qasearch.core.topology import cluster_client

RECALL_KS = (1, 5, 10, 20)
TOP_N = 5  # "a gold answer among the top 5"
REQUEST_TIMEOUT_S = 120.0
LOOPBACK = ("127.", "localhost", "[::1]")


class OpenEvalError(RuntimeError):
    """The open-domain evaluation cannot run; the message says what to do."""


@dataclass(frozen=True)
class OpenConfig:
    url: str  # the gateway's POST /qasearch
    handle_impossible: bool  # a response's no_answer means the prediction ""
    num_results: int = TOP_N
    top_k: int | None = None  # passages read per question (None: the gateway's default)
    timeout_ms: int = 60_000
    api_key: str = ""


def _check_loopback(url: str) -> None:
    host = urlsplit(url).netloc.rsplit("@", 1)[-1]
    if not host.startswith(LOOPBACK):
        raise OpenEvalError(f"{url}: the evaluation only talks to a gateway on 127.0.0.0/8")


def check_gateway(url: str) -> None:
    """Fail at once, saying how to start it, when no gateway answers at ``url``."""
    _check_loopback(url)
    health = url.rsplit("/", 1)[0] + "/healthz"
    try:
        with urllib.request.urlopen(health, timeout=5):
            pass
    except (urllib.error.URLError, OSError) as exc:
        raise OpenEvalError(f"no gateway at {health} ({exc}): start it with "
                            "`qasearch serve --detach` (or give --host/--port)") from None


def check_corpus(settings: Settings, questions: Sequence[EvalQuestion], path: str,
                 require: bool = True) -> int:
    """How many of the questions' gold paragraphs are loaded; raises when none is (unless
    not ``require``d), or when a loaded one has passages its worker has not tokenised."""
    doc_ids = sorted({q.doc_id for q in questions})
    try:
        client = cluster_client(settings)
        try:
            partitions = int(client.hget(keys.CORPUS_META, "partitions") or 0)
            if not partitions:
                raise OpenEvalError("no corpus is loaded: run `qasearch load "
                                    f"{path}` first")
            tags = [partition_tag(partition_for_doc(d, partitions)) for d in doc_ids]
            pipe = client.pipeline(transaction=False)
            for doc_id, tag in zip(doc_ids, tags):
                pipe.hget(keys.document(tag, doc_id), "passages")
            counts = pipe.execute()
            pipe = client.pipeline(transaction=False)
            wanted = [(tag, keys.passage_id(d, i)) for d, tag, n in zip(doc_ids, tags, counts)
                      if n is not None for i in range(int(n))]
            for tag, pid in wanted:
                pipe.exists(keys.tensors(tag, pid))
            untokenised = len(wanted) - sum(pipe.execute()) if wanted else 0
        finally:
            client.close()
    except (redis.RedisError, RedisClusterException) as exc:
        raise OpenEvalError(f"cluster unreachable at {settings.startup_url}: {exc}") from None
    loaded = sum(n is not None for n in counts)
    if not loaded and require:
        raise OpenEvalError(f"none of the {len(doc_ids)} paragraphs of {path} is in the "
                            f"corpus: run `qasearch load {path}` first")
    if untokenised:
        raise OpenEvalError(f"{untokenised} passages of {path} are not tokenised yet: start "
                            "the workers (qasearch workers start) or wait for them")
    return loaded


def _post(config: OpenConfig, question: str) -> tuple[dict, float]:
    body = {"search": question, "cache": False, "passages": True,
            "num_results": config.num_results, "timeout_ms": config.timeout_ms}
    if config.top_k is not None:
        body["top_k"] = config.top_k
    request = urllib.request.Request(config.url, data=json.dumps(body).encode(),
                                     headers=apiclient.json_headers(config.api_key),
                                     method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as resp:
            reply = json.load(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise OpenEvalError(f"{config.url} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise OpenEvalError(f"no gateway at {config.url} ({exc}): start it with "
                            "`qasearch serve --detach`") from None
    return reply, (time.perf_counter() - started) * 1000.0


def _row(q: EvalQuestion, reply: dict, latency_ms: float, handle_impossible: bool) -> dict:
    results = reply.get("results", [])
    said_none = handle_impossible and reply.get("no_answer", False)
    prediction = "" if said_none or not results else results[0]["answer"]
    em, f1 = score(prediction, q.answers)
    top = [r["answer"] for r in results[:TOP_N]]
    passages = reply.get("passages", [])
    read = [p.get("doc_id") for p in passages]
    rank = read.index(q.doc_id) if q.doc_id in read else None
    # what sweep.py needs to score other rankings and K without asking again
    retrieved = [{"doc_id": keys.doc_of_passage(c["pid"]), "dense": c["dense"],
                  "lexical": c["lexical"]} for c in reply.get("retrieved", [])]
    read_answers = [{k: p.get(k) for k in ("answer", "score", "null_score", "retrieval")}
                    for p in passages]
    best = results[0] if results else None  # the answer "no answer" was judged on
    margin = no_answer.margin_or_none(best["reader_score"], best.get("null_score")) \
        if best else None
    return {"id": q.qid, "question": q.question, "prediction": prediction,
            "answers": list(q.answers), "impossible": q.impossible, "exact_match": em,
            "f1": f1, "top": top, "no_answer": reply.get("no_answer"),
            "in_top": any(score(t, q.answers)[0] for t in top) if not q.impossible else None,
            "gold_doc": q.doc_id, "gold_rank": rank, "passages_read": reply.get(
                "passages_read", len(read)), "latency_ms": latency_ms,
            "took_ms": reply.get("took_ms"), "trained": reply.get("model", {}).get("trained"),
            "retrieved": retrieved, "read_answers": read_answers,
            "best": best["answer"] if best else "", "margin": margin,
            "no_answer_threshold": reply.get("model", {}).get("no_answer_threshold")}


def summarise(rows: Sequence[dict], gold_loaded: bool = True,
              handle_impossible: bool = False) -> dict:
    """The open-domain figures of ``rows`` (see :func:`evaluate_open`)."""
    answerable = [r for r in rows if not r["impossible"]]
    pairs = [(r["exact_match"], r["f1"]) for r in rows]
    recall = None
    if gold_loaded:
        recall = {str(k): sum(r["gold_rank"] is not None and r["gold_rank"] < k for r in rows)
                  / len(rows) for k in RECALL_KS}
        recall["all"] = sum(r["gold_rank"] is not None for r in rows) / len(rows)
    return {
        "questions": len(rows),
        "top1": aggregate(pairs),
        "top1_answerable": aggregate([(r["exact_match"], r["f1"]) for r in answerable]),
        "top1_unanswerable": aggregate([(r["exact_match"], r["f1"]) for r in rows
                                        if r["impossible"]]),
        "gold_in_top5": (sum(bool(r["in_top"]) for r in answerable) / len(answerable)
                         if answerable else None),
        "recall_at": recall,
        "passages_read_mean": statistics.fmean(r["passages_read"] for r in rows),
        "no_answer_share": sum(bool(r["no_answer"]) for r in rows) / len(rows),
        "latency": Summary.of([r["latency_ms"] for r in rows]).as_dict(),
        # recall@k of each retrieval ranking over phase 1's candidates, and top-1 F1 of
        # reading fewer passages with other answer weights (qasearch.bench.evaluation.sweep)
        "retrieval_recall": sweep.recall_table(rows) if gold_loaded else {},
        "read_sweep": sweep.read_table(rows, handle_impossible),
        # the no-answer threshold these responses would choose (v2.0 files)
        "no_answer": sweep.no_answer_table(rows) if handle_impossible else {},
    }


def evaluate_open(questions: Sequence[EvalQuestion], config: OpenConfig,
                  progress: bool = True, gold_loaded: bool = True) -> tuple[dict, list[dict]]:
    """(summary, one row per question): top-1 EM/F1 (all, answerable, unanswerable),
    the share of answerable questions with a gold answer among the top 5, recall@k of
    the gold paragraph among the passages read (most similar first), passages read
    per question, and client-side latency p50/p95."""
    from tqdm import tqdm

    _check_loopback(config.url)
    rows = []
    for q in tqdm(questions, desc="open-domain eval", unit="q", disable=not progress):
        reply, latency_ms = _post(config, q.question)
        rows.append(_row(q, reply, latency_ms, config.handle_impossible))
    return summarise(rows, gold_loaded, config.handle_impossible), rows
