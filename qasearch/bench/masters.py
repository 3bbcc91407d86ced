"""``qasearch bench --compare-masters 3,6``: the same corpus on fresh clusters of each size.

For each master count, a fresh :class:`~qasearch.bench.scratch.ScratchSystem` (no
replicas: they serve no query) gets the running system's model package and its corpus,
rebuilt from the stored passages (:func:`documents`), loaded with the loader; the
workers tokenise and embed it, and once every passage is in their indexes the same
questions go to ``POST /qasearch`` one at a time, caches off (after warm-up requests).
The figure is the c=1 latency p50 of each size over that of the first: the issue's
target is 6 masters within 1.1x of 3. Each system is stopped and deleted before the next
one starts, so they never share the machine.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loaders.documents import Document
from loaders.splitter import default_tokenizer
from loaders.writer import write_documents
from qasearch.bench import machine
from qasearch.bench.http_load import QueryClient
from qasearch.bench.per_k import ask_all, summarise
from qasearch.bench.scale import indexed_passages
from qasearch.bench.scratch import ScratchSystem, row_or_failure
from qasearch.bench.snapshot import StoredText
from qasearch.bench.timing import ratio
from qasearch.core import keys
from qasearch.core.settings import Settings
from qasearch.core.topology import cluster_client

Log = Callable[[str], None]
POLL_S = 0.5


@dataclass
class MastersConfig:
    sizes: tuple[int, ...] = (3, 6)
    queries: int = 20
    warmup: int = 2
    top_k: int | None = None  # None: the gateway's default
    replicas: int = 0
    ready_timeout_s: float = 1800.0
    latency_seconds: float = 300.0


def documents(passages: Sequence[StoredText]) -> list[Document]:
    """The documents the passages came from: each passage put back at its ``char_start``,
    a paragraph break in the gaps (a space where the loader cut inside a paragraph), so the
    loader splits them into the same passages again; sections at their passages."""
    by_doc: dict[str, list[StoredText]] = defaultdict(list)
    for p in passages:
        by_doc[p.doc_id].append(p)
    found = []
    for doc_id, parts in sorted(by_doc.items()):
        parts.sort(key=lambda p: p.char_start)
        text, sections = "", []
        for p in parts:
            gap = p.char_start - len(text)
            if gap >= 2:
                text += "\n" * gap
            elif gap >= 0:
                text += " " * gap
            elif text:  # places unknown: a paragraph break
                text += "\n\n"
            text += p.text
            if p.section and (not sections or sections[-1][1] != p.section):
                sections.append((len(text) - len(p.text), p.section))
        found.append(Document(doc_id=doc_id, title=parts[0].title, text=text,
                              source="bench-masters", sections=tuple(sections)))
    return found


def _wait_indexed(settings: Settings, expected: int, timeout_s: float) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while (have := indexed_passages(settings)) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{have} of {expected} passages indexed after {timeout_s:.0f}s")
        time.sleep(POLL_S)
    return time.perf_counter() - started


def measure_size(settings: Settings, package, docs: list[Document], questions: Sequence[str],
                 config: MastersConfig, log: Log = print) -> dict:
    """One master count in one fresh system; stopped and deleted before it returns."""
    system = ScratchSystem(settings, package)
    row: dict = {"masters": settings.masters, "replicas_per_master": settings.replicas_per_master}
    failed = True
    try:
        row["system_up_s"] = system.up()
        client = cluster_client(settings)
        try:
            loaded = write_documents(client, settings, docs, default_tokenizer())
            row["partitions"] = int(client.hget(keys.CORPUS_META, "partitions") or 0)
        finally:
            client.close()
        row["passages"] = loaded.passages
        row["ready_s"] = (system.start_workers(config.ready_timeout_s)  # tokenise + embed
                          + _wait_indexed(settings, loaded.passages, config.ready_timeout_s))
        system.start_gateway()
        log(f"   {settings.masters} masters: {loaded.passages} passages in "
            f"{row['partitions']} partitions, all indexed {row['ready_s']:.0f}s after the workers "
            "started")
        query = QueryClient(system.url, num_results=1, api_key=settings.api_key)
        row["load_average"] = machine.load_average()
        rows = ask_all(query, questions, config.top_k, config.latency_seconds, config.warmup)
        row["latency"] = summarise(rows)
        row["failed"] = sum(not r["ok"] for r in rows)
        row["indexed_passages"] = indexed_passages(settings)
        failed = False
    finally:
        system.down(failed=failed)
    return row


def run_masters(scratch: Callable[[int], Settings], package, passages: Sequence[StoredText],
                questions: Sequence[str], config: MastersConfig, log: Log = print) -> dict:
    """Every size of ``config.sizes`` in turn; ``scratch(masters)`` gives its Settings."""
    docs = documents(passages)
    sizes = []
    for masters in config.sizes:
        settings = scratch(masters).replace(masters=masters,
                                            replicas_per_master=config.replicas)
        log(f"e. {masters} masters: a fresh system on port {settings.base_port}")
        sizes.append(row_or_failure("masters", masters, lambda s=settings: measure_size(
            s, package, docs, questions, config, log), log))
    first = sizes[0].get("latency") if sizes else None
    for row in sizes:
        lat = row.get("latency")
        row["p50_over_first"] = ratio(lat["p50_ms"], first["p50_ms"]) if lat and first else None
    return {"stored_passages": len(passages), "documents": len(docs),
            "questions": len(questions), "config": dict(vars(config)), "sizes": sizes}
