"""Running the gateway under gunicorn, in the foreground or in the background."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request

from qasearch.core import monitoring, procs
from qasearch.core.settings import Settings, to_environ

GATEWAY = "gateway"
GATEWAY_MARKER = "api.wsgi:app"


def gunicorn_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{settings.api_host}:{settings.api_port}",
        "--workers", str(settings.api_workers),
        "--worker-class", "gthread", "--threads", "8",
        "--timeout", "120",
        "--access-logfile", "-",
        "--config", "python:api.gunicorn_conf",  # hooks: multiprocess metrics of dead workers
        GATEWAY_MARKER,
    ]


def _environ(settings: Settings) -> dict[str, str]:
    """The gateway's environment; a fresh metrics folder, and its scrape target file."""
    folder = monitoring.fresh_multiproc_dir(settings)
    monitoring.write_target(settings, monitoring.GATEWAY_TARGET, settings.api_host,
                            settings.api_port, {"component": "gateway"})
    return {**to_environ(settings), "PROMETHEUS_MULTIPROC_DIR": str(folder)}


def run_foreground(settings: Settings) -> None:
    os.environ.update(_environ(settings))
    command = gunicorn_command(settings)
    os.execv(command[0], command)


def url(settings: Settings, path: str = "") -> str:
    host = settings.api_host if ":" not in settings.api_host else f"[{settings.api_host}]"
    return f"http://{host}:{settings.api_port}{path}"


def start_background(settings: Settings, wait_s: float = 60.0) -> tuple[int, bool]:
    """Start gunicorn detached unless it runs; wait until /healthz answers."""
    pid = procs.running_pid(settings.run_dir, GATEWAY, GATEWAY_MARKER)
    if pid is not None:
        return pid, False
    if not procs.port_free(settings.api_host, settings.api_port):
        # another process (another run folder's gateway?) holds it: its /healthz would
        # answer for ours
        raise RuntimeError(f"{settings.api_host}:{settings.api_port} is in use by another "
                           f"process; stop it or choose QASEARCH_API_PORT")
    pid = procs.start(settings.run_dir, GATEWAY, gunicorn_command(settings), _environ(settings))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url(settings, "/healthz"), timeout=2) as resp:
                if resp.status == 200:
                    return pid, True
        except (urllib.error.URLError, OSError):
            pass
        # the started pid, not running_pid(): until the child has exec'd gunicorn its
        # cmdline is still this process's, which would look like "not running"
        if procs.gone(pid):
            break
        time.sleep(0.2)
    log = procs.log_file(settings.run_dir, GATEWAY)
    raise RuntimeError(f"gateway did not come up on {url(settings)}; see {log}")


def stop(settings: Settings) -> bool:
    monitoring.remove_target(settings, monitoring.GATEWAY_TARGET)
    return procs.stop(settings.run_dir, GATEWAY, GATEWAY_MARKER, timeout=20)
