"""Shared fixtures: one real Redis Cluster (3 masters + 3 replicas) per test session.

Tests take ``cluster`` and use it as their Settings (``settings = cluster``); it points
at fresh loopback ports and a temporary data dir, and is purged at the end.
"""

from __future__ import annotations

import pytest

from qasearch.cluster import localcluster
from tests.helpers import cluster_settings, free_port, free_port_block

__all__ = ["free_port", "free_port_block", "cluster_settings", "start_cluster"]


def start_cluster(root, masters: int = 3, replicas: int = 1, attempts: int = 3, **changes):
    """Settings of a running cluster under ``root`` (with ``changes`` applied, e.g.
    ``hosts``); retries when a port race is lost."""
    for attempt in range(attempts):
        settings = cluster_settings(root / f"try{attempt}", masters, replicas).replace(**changes)
        try:
            localcluster.up(settings)
            return settings
        except localcluster.PortInUse:
            localcluster.down(settings, purge=True)
        except localcluster.ClusterError as exc:
            localcluster.down(settings, purge=True)
            pytest.fail(f"could not start the test cluster: {exc}", pytrace=False)
    pytest.fail(f"could not find free ports for a cluster in {attempts} attempts", pytrace=False)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """Settings of a running 3+3 cluster on loopback, shared by the whole session."""
    settings = start_cluster(tmp_path_factory.mktemp("qasearch"))
    try:
        yield settings
    finally:
        localcluster.down(settings, purge=True)


from tests.guarded import guarded  # noqa: E402,F401  (keyed gateway on it)
from tests.system import system  # noqa: E402,F401  (the running-system fixture)
