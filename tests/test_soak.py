"""`qasearch chaos --soak`: saturation, an open-loop hold, windows, memory, targets.

The soak runs for seconds on the session's system (real cluster, workers, gunicorn);
the assertions are on counts and on which processes were read, never on time.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from qasearch.bench.http_load import QueryClient
from qasearch.bench.procmem import Memory, growth
from qasearch.bench.soak import Sent, kind_of, targets, windows
from qasearch.cluster.workers import states as worker_states
from qasearch.core import procs
from qasearch.core.settings import Settings, to_environ
from tests.helpers import HOST, free_port

P99_TARGET = "p99 in the last minute within 1.5x of the first"
MEMORY_TARGET = "memory growth at most 10 %"


def chaos(settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **to_environ(settings), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "qasearch", "chaos", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_windows_split_requests_by_schedule_and_count_each_kind():
    records = [Sent(0, 0.0, 0.0, 0.2, 200.0, "answered"), Sent(1, 0.5, 0.5, 0.9, 400.0, "partial"),
               Sent(2, 1.0, 1.6, 2.5, 900.0, "answered"), Sent(3, 1.5, 1.5, 1.6, 5.0, "failed"),
               Sent(4, 2.0, 2.0, None, None, "timeout"), Sent(5, 2.5)]  # the last: unsent
    rows = windows(records, seconds=3.0, window_s=2.0)
    assert [r["window"] for r in rows] == [1, 2]  # 3 s in windows of 2 s: the last is short
    first, second = rows
    assert (first["requests"], first["sent"], first["answered"], first["partial"],
            first["failed"]) == (4, 4, 2, 1, 1)
    assert first["late"] == 1 and first["max_late_s"] == 0.6  # request 2 went out 0.6 s late
    assert first["p50_ms"] == 400.0 and first["p99_ms"] == 900.0  # the 200s only
    assert first["done_per_s"] == 1.0  # two 200 replies came back inside [0, 2)
    assert (second["requests"], second["sent"], second["timeout"], second["unsent"]) == (2, 1, 1, 1)
    assert second["p99_ms"] is None and second["seconds"] == 1.0


def test_targets_say_met_or_missed_with_the_amounts():
    rows = [{"window": 1, "p99_ms": 100.0}, {"window": 2, "p99_ms": None},
            {"window": 3, "p99_ms": 160.0}]
    start = [Memory("worker-7000", "worker", 10, 1000), Memory("gateway", "gateway", 11, 500),
             Memory("worker-7001", "worker", 12, 1000)]
    end = [Memory("worker-7000", "worker", 10, 1050), Memory("gateway", "gateway", 11, 560),
           Memory("worker-7001", "worker", 13, 900)]  # 7001's worker restarted
    memory = growth(start, end)
    assert [m["growth_pct"] for m in memory] == [5.0, 12.0, None]
    assert memory[2]["status"] == "restarted (pid 13)"
    p99, mem = targets(rows, memory, window_s=60)
    assert (p99["target"], p99["value"], p99["met"]) == (P99_TARGET, 1.6, False)
    assert (mem["target"], mem["value"], mem["met"]) == (MEMORY_TARGET, 12.0, False)
    assert "gateway" in mem["detail"] and "worker-7001 restarted" in mem["detail"]
    p99, mem = targets(rows[:1], growth(start[:1], end[:1]), window_s=60)
    assert p99["met"] is None  # one window: nothing to compare
    assert (mem["value"], mem["met"]) == (5.0, True)


def test_a_silent_gateway_is_a_timeout_and_a_closed_port_is_lost():
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind((HOST, 0))
        silent.listen(4)
        reply = QueryClient(f"http://{HOST}:{silent.getsockname()[1]}/qasearch",
                            timeout_s=0.5).ask("anyone?")
    assert (reply.status, reply.timed_out, kind_of(reply)) == (None, True, "timeout")
    reply = QueryClient(f"http://{HOST}:{free_port()}/qasearch", timeout_s=2).ask("anyone?")
    assert (reply.status, reply.timed_out, kind_of(reply)) == (None, False, "lost")


def test_soak_reports_every_window_request_and_process(system, tmp_path):
    out_file = tmp_path / "soak.json"
    # 0.1 minutes in 2 s windows; a short saturation at c=1 and 2
    done = chaos(system, "--soak", "0.1", "--soak-window-seconds", "2", "--soak-levels", "1,2",
                 "--soak-level-queries", "12", "--soak-level-seconds", "10",
                 "--output", str(out_file))
    out = done.stdout + done.stderr
    assert out_file.exists(), out
    result = json.loads(out_file.read_text())
    assert [level["concurrency"] for level in result["saturation"]["levels"]] == [1, 2], out
    saturated = result["saturation"]["requests_per_s"]
    assert saturated > 0 and abs(result["rate_per_s"] - 0.8 * saturated) < 1e-9, out

    rows, total = result["windows"], result["total"]
    assert [r["window"] for r in rows] == [1, 2, 3], out
    # the paced schedule: rate x 6 s requests, every one in exactly one window
    assert result["scheduled"] == max(1, round(result["rate_per_s"] * 6.0)), out
    assert sum(r["requests"] for r in rows) == total["requests"] == result["scheduled"], out
    assert total["sent"] + total["unsent"] == result["scheduled"], out
    assert total["sent"] >= 0.9 * result["scheduled"], out  # the sender was not held back
    for r in rows:
        kinds = sum(r[k] for k in ("answered", "partial", "failed", "timeout", "lost", "unsent"))
        assert kinds == r["requests"], r
    assert total["answered"] + total["partial"] > 0, out
    assert done.returncode == (1 if total["timeout"] + total["lost"] else 0), out

    memory = {m["name"]: m for m in result["memory"]["processes"]}
    worker_pids = {int(s["pid"]) for s in worker_states(system)}
    read = {m["pid"] for m in memory.values() if m["role"] == "worker"}
    assert worker_pids <= read, (worker_pids, memory)
    gateway_pid = procs.running_pid(system.run_dir, "gateway", "api.wsgi:app")
    assert memory["gateway"]["pid"] == gateway_pid
    gunicorn = [m for m in memory.values() if m["role"] == "gunicorn-worker"]
    assert len(gunicorn) == 1, memory  # the session's gateway runs `serve --workers 1`
    assert _ppid(gunicorn[0]["pid"]) == gateway_pid
    assert "supervisor" in memory
    for m in memory.values():
        assert m["start_kib"] and m["start_kib"] > 0, m
        if m["status"] == "ok":
            assert m["end_kib"] > 0 and m["growth_pct"] is not None, m

    assert [t["target"] for t in result["targets"]] == [P99_TARGET, MEMORY_TARGET]
    for t in result["targets"]:
        assert f"target: {t['target']}: " in done.stdout
    assert "window" in done.stdout and "VmRSS" in done.stdout


def test_soak_refuses_bad_input_and_a_missing_gateway(tmp_path):
    nothing = Settings(data_dir=str(tmp_path / "cluster"), run_dir=str(tmp_path / "run"),
                       secrets_dir=str(tmp_path / "secrets"), api_port=free_port(),
                       base_port=free_port())
    for minutes in ("0", "-2"):
        done = chaos(nothing, "--soak", minutes)
        assert done.returncode == 2 and "--soak: must be positive" in done.stderr, done.stderr
    done = chaos(nothing, "--soak", "1", "--soak-share", "1.5")
    assert done.returncode == 2 and "--soak-share: must be in (0, 1]" in done.stderr
    done = chaos(nothing, "--soak", "1", "--events", "worker-kill")
    assert done.returncode == 2 and "leave out --events" in done.stderr
    done = chaos(nothing, "--soak", "0.1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"no gateway runs from the run folder {nothing.run_dir}" in done.stderr
