"""`qasearch chaos` on the running system: a worker kill and a model push under traffic."""

from __future__ import annotations

import json

from qasearch.bench.chaos import EventReport, Outcome, classify, report
from tests.system import qasearch


def test_classify_and_recovery_count_what_each_request_got():
    assert classify(None, None)[0] == "lost"
    assert classify(503, {"error": "overloaded"})[0] == "failed"
    partial = {"shards": {"failed": [{"node": "n", "reason": "deadline exceeded",
                                      "partitions": ["p01"]}],
                          "partitions": {"missing": ["p01"]}}}
    assert classify(200, partial)[:2] == ("partial", ("p01",))
    whole = {"shards": {"failed": [], "partitions": {"missing": []}}}
    assert classify(200, whole)[0] == "answered"
    outcomes = [Outcome(0.0, 1.0, "answered"), Outcome(1.0, 2.0, "partial", missing=("p01",)),
                Outcome(1.5, 3.0, "failed"), Outcome(2.5, 4.0, "answered")]
    rep = report("worker-kill", outcomes, started=0.5, event_s=0.1)
    assert (rep.sent, rep.answered, rep.partial, rep.failed, rep.lost) == (4, 2, 1, 1, 0)
    assert rep.recovery_s == 3.5 and rep.missing == ["p01"]
    assert report("x", outcomes[:1], started=0.5, event_s=0).recovery_s == 0.0


def test_chaos_worker_kill_and_model_push_lose_nothing(system, tmp_path):
    out_file = tmp_path / "chaos.json"
    # a generous deadline: on two shared cores a model load can starve the shards
    out = qasearch(system, "chaos", "--events", "worker-kill,model-push", "--seconds", "6",
                   "--timeout-ms", "30000", "--json", str(out_file), timeout=900)
    reports = [EventReport(**r) for r in json.loads(out_file.read_text())]
    assert [r.event for r in reports] == ["worker-kill", "model-push"], out
    for r in reports:
        assert r.sent > 0, out
        assert r.lost == 0, out
        assert r.answered + r.partial + r.failed + r.lost == r.sent, out
        assert r.event_ok, r.note
        assert r.recovery_s is not None, out  # answered completely again afterwards
    assert "recovery_s" in out  # the table was printed
