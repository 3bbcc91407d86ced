"""Scale mode: synthetic corpora of growing size, each in a fresh system.

For each size N, a fresh :class:`~qasearch.bench.scratch.ScratchSystem` gets
the same model package and N synthetic passages (:mod:`loaders.synthetic`), and we
measure the load, the live ingest and the query latency. What is real and what is
a shortcut is spelled out in :data:`METHOD`, which goes into the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gears.tensorize import PassageText, tensor_fields, tensorize
from loaders import synthetic
from loaders.splitter import default_tokenizer
from loaders.writer import write_documents
from qasearch.bench import floor_parallel, http_load
from qasearch.bench.scratch import ScratchSystem, row_or_failure
from qasearch.cluster import workers
from qasearch.core import keys
from qasearch.core.partitions import partition_for_doc, partition_tag
from qasearch.core.settings import Settings
from qasearch.core.topology import cluster_client, masters, node_client

Log = Callable[[str], None]
BULK_CHUNK = 2048
POLL_S = 0.25

METHOD = """\
How the scale figures are made. For each size N: a fresh cluster (same layout as the
system), the same model package, and N synthetic passages (`qasearch synth`: random
word-like text, one 80-180 token passage per document, ids `synth-...`).

* **Real path, real embeddings:** the last L passages (L = min(live passages, N)) are
  written by the loader *after* the workers are up; the workers pre-tokenise and embed
  them from the ingest streams. "workers" passages/s = L / (first write until every one
  of them has its tensors in Redis). The embedder floor is the workers' own function
  (`gears.tensorize.tensorize`: tokenise + embed) on the same L passages, run in this
  process on the floor's torch threads and split over one process per master (at most
  one per core) with the workers' thread count; the faster layout is the floor.
* Redis memory for the corpus is the masters' `used_memory_dataset` once everything is
  loaded minus the same with only the model package stored: passages, tensors, index
  sets, document records and ingest stream entries (replicas hold a copy as much again).
* "indexed" is the passage count the workers report in their heartbeats after the
  queries: every passage of the corpus must be in their in-memory indexes.
* **SHORTCUT for the other N - L passages:** written by the same loader, but their tensors
  are computed in bulk in this process before the workers start: the *real* reader token
  ids and offsets (same tokenizer), and **random unit vectors instead of embeddings**
  (embedding every passage at the measured rate would take the time given in the
  "embedding all N would take" column). The workers load them as current tensors, as
  after a restart. Query cost does not depend on what the vectors hold: retrieval is one
  product with an N-row matrix either way, and every query reads top_k passages of every
  partition, all from the same length distribution. Only *which* passages are read
  changes (mostly the live ones, whose vectors are real), and on synthetic text that
  means nothing anyway.
* Latency: `POST /qasearch`, caches off, one at a time, synthetic questions (sentences of
  passages with a span taken out), after warm-up queries. Every query reads top_k
  passages of every partition (the "read per query" column), whatever N is.
* "ready after" is the workers' start until all are ready: loading the model and
  reading N - L stored tensors into the in-memory indexes.
"""


@dataclass
class ScaleConfig:
    sizes: Sequence[int]
    live_passages: int = 300
    queries: int = 15
    warmup: int = 2
    seed: int = 0
    embed_threads: int = 1
    ready_timeout_s: float = 1800.0
    ingest_timeout_s: float = 900.0
    latency_seconds: float = 120.0


def _write(client, settings: Settings, docs, tokenizer) -> tuple[int, float]:
    summary = write_documents(client, settings, docs, tokenizer)
    if summary.passages != summary.documents:
        raise RuntimeError(f"{summary.documents} synthetic documents became {summary.passages} "
                           "passages; each must stay one passage (max_passage_tokens too low?)")
    return summary.passages, summary.seconds


def _partitions(client) -> int:
    return int(client.hget(keys.CORPUS_META, "partitions") or 0)


def store_bulk_tensors(client, model, count: int, seed: int) -> float:
    """Tensors of synthetic passages 0..count-1: real ids/offsets, random unit vectors."""
    started = time.perf_counter()
    partitions = _partitions(client)
    rng = np.random.default_rng(seed)
    docs = synthetic.documents(count, seed)
    while batch := [d for _, d in zip(range(BULK_CHUNK), docs)]:
        encodings = model.reader_tokenizer.encode_batch([d.text for d in batch],
                                                        add_special_tokens=False)
        vectors = rng.standard_normal((len(batch), model.embedding_dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        pipe = client.pipeline()
        for doc, enc, vector in zip(batch, encodings, vectors):
            tag = partition_tag(partition_for_doc(doc.doc_id, partitions))
            pipe.hset(keys.tensors(tag, keys.passage_id(doc.doc_id, 0)),
                      mapping=tensor_fields(model, enc, vector))
        pipe.execute()
    return time.perf_counter() - started


def wait_for_tensors(client, docs, timeout_s: float) -> float:
    """Block until every passage of ``docs`` has tensors; returns when (perf_counter)."""
    partitions = _partitions(client)
    waiting = [keys.tensors(partition_tag(partition_for_doc(d.doc_id, partitions)),
                            keys.passage_id(d.doc_id, 0)) for d in docs]
    deadline = time.monotonic() + timeout_s
    while waiting:
        pipe = client.pipeline()
        for key in waiting:
            pipe.exists(key)
        waiting = [k for k, found in zip(waiting, pipe.execute()) if not found]
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} passages still without tensors after "
                               f"{timeout_s:.0f}s")
        time.sleep(POLL_S)
    return time.perf_counter()


def embedder_floor(model, docs, settings: Settings, threads: int) -> dict:
    """Passages/s of the workers' own tokenise + embed function on ``docs``: in this
    process on ``threads`` threads, and in the workers' layout (one process per master, at
    most one per core, ``torch_threads`` each); the better of the two is the floor."""
    passages = [PassageText(keys.passage_id(d.doc_id, 0), d.text, d.title) for d in docs]
    tensorize(model, passages[: min(16, len(passages))])  # warm-up
    started = time.perf_counter()
    tensorize(model, passages)
    found = {"in_process": {"layout": f"1 process x {threads} thread(s)",
                            "passages_per_s": len(passages) / (time.perf_counter() - started)}}
    procs = min(os.cpu_count() or 1, settings.masters)
    if (procs, settings.torch_threads) != (1, threads):
        par = floor_parallel.ingest(settings, model.version, passages, procs,
                                    settings.torch_threads)
        found["parallel"] = par.as_dict("passages")
    found["best"] = max(found.values(), key=lambda x: x["passages_per_s"])
    return found


def dataset_mib(settings: Settings) -> float:
    """The masters' ``used_memory_dataset``: data only, without replication and client
    buffers (which come and go, e.g. while replicas copy a fresh model package)."""
    total = 0
    for master in masters(settings):
        node = node_client(master.host, master.port, settings)
        try:
            total += int(node.info("memory")["used_memory_dataset"])
        finally:
            node.close()
    return total / 1024 / 1024


def indexed_passages(settings: Settings) -> int:
    """Passages in the workers' in-memory indexes, from their heartbeats."""
    return sum(int(s.get("passages", 0) or 0) for s in workers.states(settings))


def measure_size(size: int, settings: Settings, package, model, config: ScaleConfig,
                 log: Log = print) -> dict:
    """One size in one fresh system; everything it started is stopped before it returns."""
    live = min(config.live_passages, size)
    bulk = size - live
    tokenizer = default_tokenizer()
    system = ScratchSystem(settings, package)
    row: dict = {"passages": size, "live_passages": live, "bulk_passages": bulk}
    failed = True
    try:
        row["system_up_s"] = system.up()
        model_memory = dataset_mib(settings)  # the model package on every master
        client = cluster_client(settings)
        try:
            if bulk:
                written, seconds = _write(client, settings, synthetic.documents(bulk,
                                                                                config.seed),
                                          tokenizer)
                row["write_passages_per_s"] = written / seconds if seconds else None
                row["bulk_tensors_s"] = store_bulk_tensors(client, model, bulk, config.seed)
                log(f"   {bulk:,} passages written ({row['write_passages_per_s']:,.0f}/s), "
                    f"bulk tensors in {row['bulk_tensors_s']:.1f}s")
            row["workers_ready_s"] = system.start_workers(config.ready_timeout_s)
            row["gateway_start_s"] = system.start_gateway()
            log(f"   workers ready in {row['workers_ready_s']:.1f}s")
            live_docs = list(synthetic.documents(live, config.seed, start=bulk))
            started = time.perf_counter()
            written, write_s = _write(client, settings, live_docs, tokenizer)
            done = wait_for_tensors(client, live_docs, config.ingest_timeout_s)
            if not bulk:
                row["write_passages_per_s"] = written / write_s if write_s else None
            worker_rate = live / (done - started)
            floors = embedder_floor(model, live_docs, settings, config.embed_threads)
            floor_rate = floors["best"]["passages_per_s"]
            row["ingest"] = {
                "passages": live, "write_s": write_s, "seconds": done - started,
                "worker_passages_per_s": worker_rate,
                "embedder_floor_passages_per_s": floor_rate,
                "embedder_floor_layout": floors["best"]["layout"],
                "embedder_floors": floors,
                "worker_over_floor": worker_rate / floor_rate if floor_rate else None,
            }
            row["embedding_all_would_take_s"] = size / worker_rate
            log(f"   live ingest: {worker_rate:.1f} passages/s through the workers, embedder "
                f"floor {floor_rate:.1f} passages/s ({floors['best']['layout']})")
            row["redis_memory_corpus_mib"] = dataset_mib(settings) - model_memory
            row["partitions"] = _partitions(client)
            row["passages_read_per_query"] = row["partitions"] * settings.top_k
        finally:
            client.close()
        asked = [q.question for q in synthetic.questions(config.queries + config.warmup, size,
                                                          config.seed)]
        query = http_load.QueryClient(system.url, api_key=system.settings.api_key)
        for q in asked[: config.warmup]:
            query.ask(q)
        run = http_load.measure_latency(query, asked[config.warmup :] or asked,
                                        config.queries, config.latency_seconds)
        row["latency"] = run.summary.as_dict()
        row["errors"] = run.errors
        row["partial"] = run.partial
        row["notes"] = query.notes
        row["indexed_passages"] = indexed_passages(settings)  # heartbeats are 1 s old at most
        log(f"   latency {run.summary.line()}; {row['indexed_passages']:,} passages indexed")
        failed = False
    finally:
        system.down(failed=failed)
    return row


def run_scale(settings: Settings, package, config: ScaleConfig, log: Log = print) -> list[dict]:
    """Every size in its own fresh system on ``settings``' ports and folders."""
    from qasearch.core.models import LoadedModel

    model = LoadedModel.from_package(package, threads=config.embed_threads)
    rows = []
    for size in config.sizes:
        log(f"scale: {size:,} passages in a fresh system on port {settings.base_port}")
        rows.append(row_or_failure("passages", size, lambda size=size: measure_size(
            size, settings, package, model, config, log), log))
    return rows
