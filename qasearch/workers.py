"""Starting, stopping and inspecting the shard workers (through their supervisor)."""

from __future__ import annotations

import sys
import time

from qasearch import keys, procs
from qasearch.settings import Settings, to_environ
from qasearch.topology import masters, node_client

SUPERVISOR = "supervisor"
SUPERVISOR_MARKER = "gears.supervisor"
HEARTBEAT_FRESH_S = 5.0


def start(settings: Settings) -> tuple[int, bool]:
    """Start the supervisor unless it runs; returns (pid, started_now)."""
    pid = procs.running_pid(settings.run_dir, SUPERVISOR, SUPERVISOR_MARKER)
    if pid is not None:
        return pid, False
    command = [sys.executable, "-m", "gears.supervisor"]
    return procs.start(settings.run_dir, SUPERVISOR, command, env=to_environ(settings)), True


def stop(settings: Settings) -> bool:
    return procs.stop(settings.run_dir, SUPERVISOR, SUPERVISOR_MARKER, timeout=20)


def states(settings: Settings) -> list[dict[str, str]]:
    """Each master's worker heartbeat hash (empty when the worker is absent)."""
    found = []
    for master in masters(settings):
        client = node_client(master.host, master.port, settings, decode_responses=True)
        try:
            state = client.hgetall(keys.worker_state(master.tag))
        finally:
            client.close()
        found.append({"master": master.address, "tag": master.tag, **state})
    return found


def is_ready(state: dict[str, str], fresh_s: float = HEARTBEAT_FRESH_S) -> bool:
    """A worker is ready when it says so in a heartbeat of the last few seconds."""
    age = time.time() - float(state.get("heartbeat", 0))
    return state.get("ready") == "1" and age < fresh_s


def wait_ready(settings: Settings, timeout: float, on_wait=None) -> list[dict[str, str]]:
    """Block until every master's worker reports ready; raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        current = states(settings)
        if current and all(is_ready(s) for s in current):
            return current
        if time.monotonic() > deadline:
            missing = [s["master"] for s in current if not is_ready(s)]
            raise TimeoutError(f"workers not ready after {timeout:.0f}s: {', '.join(missing)}")
        if on_wait:
            on_wait(current)
        time.sleep(0.5)
