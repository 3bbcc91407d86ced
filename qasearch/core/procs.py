"""Background processes qasearch starts, tracked by pid files in ``settings.run_dir``.

Only processes recorded here are ever signalled, and only after checking that the
pid still belongs to the command we started (``/proc/<pid>/cmdline``), so a
recycled pid never gets killed by mistake.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

# The processes' names: pid and log files in the run folder, and what their command
# lines hold (checked before any signal).
SUPERVISOR = "supervisor"
SUPERVISOR_MARKER = "gears.supervisor"
WORKER_MARKER = "gears.worker"


def _file_part(host: str) -> str:
    return host.replace(":", "_").replace("/", "_")  # an IPv6 address in a file name


def supervisor_name(host: str = "") -> str:
    """The pid and log file name of the supervisor of ``host`` ("" = of every node)."""
    return f"{SUPERVISOR}-{_file_part(host)}" if host else SUPERVISOR


def worker_name(host: str, port: int) -> str:
    """The pid and log file name of the worker of node ``port`` started by the supervisor
    of ``host`` ("" = the supervisor of every node; ports are unique in a layout)."""
    return f"worker-{_file_part(host)}-{port}" if host else f"worker-{port}"


def pid_file(run_dir: str, name: str) -> Path:
    return Path(run_dir) / f"{name}.pid"


def log_file(run_dir: str, name: str) -> Path:
    return Path(run_dir) / f"{name}.log"


def cmdline(pid: int) -> str:
    """The process's command line, space-separated ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs; a zombie waiting to be reaped counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def running_pid(run_dir: str, name: str, marker: str) -> int | None:
    """The pid recorded for ``name`` if that process is alive and its command has ``marker``."""
    path = pid_file(run_dir, name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if marker in cmdline(pid) and not gone(pid):
        return pid
    return None


def start(
    run_dir: str, name: str, command: Sequence[str], env: dict[str, str] | None = None
) -> int:
    """Start ``command`` detached (own session), logging to ``<name>.log``; returns its pid."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with open(log_file(run_dir, name), "ab") as log:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    pid_file(run_dir, name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(run_dir: str, name: str, marker: str, timeout: float = 10.0) -> bool:
    """SIGTERM the recorded process (SIGKILL after ``timeout``); False if none was running."""
    pid = running_pid(run_dir, name, marker)
    pid_file(run_dir, name).unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker not in cmdline(pid) or gone(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (IPv4 or IPv6): a bind succeeds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Same option Redis and gunicorn use, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
