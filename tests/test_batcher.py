"""The dynamic batching queue: limits, ordering, and failure propagation."""

from __future__ import annotations

import threading

import pytest

from gears.batcher import DynamicBatcher


def test_results_come_back_in_order_for_each_caller():
    batcher = DynamicBatcher(lambda items: [x * 10 for x in items], max_batch_size=4)
    try:
        futures = [batcher.submit([i, i + 1, i + 2]) for i in range(0, 30, 3)]
        for i, fut in zip(range(0, 30, 3), futures):
            assert fut.result(timeout=5) == [i * 10, (i + 1) * 10, (i + 2) * 10]
    finally:
        batcher.close()


def test_batches_never_exceed_max_size_and_do_gather_concurrent_callers():
    sizes: list[int] = []
    gate = threading.Event()

    def handler(items):
        gate.wait(5)  # hold the first batch so the others queue up behind it
        sizes.append(len(items))
        return items

    batcher = DynamicBatcher(handler, max_batch_size=3, max_wait_ms=50)
    try:
        first = batcher.submit([0])
        rest = [batcher.submit([i]) for i in range(1, 8)]
        gate.set()
        assert first.result(timeout=5) == [0]
        assert [f.result(timeout=5)[0] for f in rest] == list(range(1, 8))
    finally:
        batcher.close()
    assert max(sizes) <= 3
    assert sum(sizes) == 8
    assert any(size > 1 for size in sizes)


def test_handler_error_fails_the_callers_of_that_batch_only():
    def handler(items):
        if "bad" in items:
            raise ValueError("boom")
        return items

    batcher = DynamicBatcher(handler, max_batch_size=1)
    try:
        bad = batcher.submit(["bad"])
        good = batcher.submit(["good"])
        with pytest.raises(ValueError, match="boom"):
            bad.result(timeout=5)
        assert good.result(timeout=5) == ["good"]
    finally:
        batcher.close()


def test_empty_submission_resolves_at_once():
    batcher = DynamicBatcher(lambda items: items)
    try:
        assert batcher.submit([]).result(timeout=1) == []
    finally:
        batcher.close()
