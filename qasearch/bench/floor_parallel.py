"""Best-case floors in the system's process layout: independent single-threaded processes.

The system runs one worker process per master, each with ``torch_threads``
threads. On a few cores, independent processes use the cores better than one
process splitting each small forward pass over threads, so throughput floors are
also measured that way: ``P`` processes (one per master, at most one per core),
each loading the served package from Redis, each given an equal share of the work
(dealt round-robin): questions to embed and padded reader batches (the query
floor), or passages to pre-tokenise and embed with the workers' own
:func:`gears.tensorize.tensorize` (the ingest floor). They warm up, start together,
and the rate is the work done / the slowest process's time. Processes are started
with ``spawn`` (torch and fork do not mix).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from qasearch.core.settings import Settings

READY_TIMEOUT_S = 300.0


@dataclass
class Share:
    """One process's part of the work."""

    questions: list[str] = field(default_factory=list)
    batches: list[tuple] = field(default_factory=list)
    passages: list = field(default_factory=list)  # gears.tensorize.PassageText


def _load(settings: Settings, version: str, threads: int):
    from qasearch.core import modelpkg
    from qasearch.core.models import LoadedModel
    from qasearch.core.topology import masters, node_client

    first = masters(settings)[0]
    client = node_client(first.host, first.port, settings, socket_timeout=120)
    try:
        return LoadedModel.from_package(modelpkg.load(client, first.tag, version),
                                        threads=threads)
    finally:
        client.close()


def _work(model, share: Share) -> None:
    from gears.tensorize import tensorize

    if share.questions:
        model.embed(share.questions)
    for batch in share.batches:
        model.reader_logits(*batch)
    if share.passages:
        tensorize(model, share.passages)


def _warm_up(model, share: Share) -> None:
    from gears.tensorize import tensorize

    seen = set()
    for batch in share.batches:  # each distinct shape twice: TorchScript optimises on call 2
        if batch[0].shape not in seen:
            seen.add(batch[0].shape)
            model.reader_logits(*batch)
            model.reader_logits(*batch)
    if share.questions:
        model.embed(share.questions)
    if share.passages:
        tensorize(model, share.passages[:16])


def _child(settings: Settings, version: str, threads: int, share: Share, ready, start,
           results) -> None:
    try:
        model = _load(settings, version, threads)
        _warm_up(model, share)
    except BaseException as exc:  # noqa: BLE001 - the parent must hear of it
        ready.put(f"{type(exc).__name__}: {exc}")
        return
    ready.put(None)
    start.wait()
    try:
        began = time.perf_counter()
        _work(model, share)
        results.put((time.perf_counter() - began, None))
    except BaseException as exc:  # noqa: BLE001
        results.put((None, f"{type(exc).__name__}: {exc}"))


@dataclass
class ParallelRun:
    processes: int
    threads_per_process: int
    units: int  # questions or passages
    seconds: float  # the slowest process

    @property
    def per_s(self) -> float:
        return self.units / self.seconds if self.seconds > 0 else 0.0

    @property
    def layout(self) -> str:
        return f"{self.processes} processes x {self.threads_per_process} thread(s)"

    def as_dict(self, unit: str) -> dict:
        return {"processes": self.processes, "threads_per_process": self.threads_per_process,
                unit: self.units, "seconds": self.seconds, f"{unit}_per_s": self.per_s,
                "layout": self.layout}


def run(settings: Settings, version: str, shares: Sequence[Share], threads: int,
        units: int) -> ParallelRun:
    """Run each share in its own process, all starting together."""
    ctx = mp.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    children = [ctx.Process(target=_child, daemon=True,
                            args=(settings, version, threads, share, ready, start, results))
                for share in shares]
    for child in children:
        child.start()
    try:
        problems = [ready.get(timeout=READY_TIMEOUT_S) for _ in children]
        if any(problems):
            raise RuntimeError(f"parallel floor failed: {next(p for p in problems if p)}")
        start.set()
        outcomes = [results.get(timeout=READY_TIMEOUT_S) for _ in children]
    finally:
        start.set()
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.terminate()
    errors = [e for _, e in outcomes if e]
    if errors:
        raise RuntimeError(f"parallel floor failed: {errors[0]}")
    return ParallelRun(len(shares), threads, units, max(s for s, _ in outcomes))


def queries(settings: Settings, version: str, questions: list[str], batches: list[tuple],
            processes: int, threads: int) -> ParallelRun:
    """Questions/s of embedding ``questions`` and running ``batches`` (length-sorted)."""
    shares = [Share(questions=questions[i::processes], batches=batches[i::processes])
              for i in range(processes)]
    return run(settings, version, shares, threads, len(questions))


def ingest(settings: Settings, version: str, passages: list, processes: int,
           threads: int) -> ParallelRun:
    """Passages/s of the workers' tokenise + embed over ``passages``."""
    shares = [Share(passages=passages[i::processes]) for i in range(processes)]
    return run(settings, version, shares, threads, len(passages))
