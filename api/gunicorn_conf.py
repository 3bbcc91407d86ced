"""gunicorn settings of the gateway (``gunicorn -c python:api.gunicorn_conf``).

Only hooks live here; the bind address, workers and threads are on the command
line that :mod:`qasearch.cluster.gateway` builds from the Settings.
"""

from __future__ import annotations

import os


def child_exit(server, worker) -> None:
    """A gunicorn worker ended: drop its live gauges from the multiprocess metrics.

    Its counters and histograms stay in the folder, so totals never go backwards.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
