"""Waiting for local nodes: answering PING, meeting each other, reporting cluster_state:ok.

Every wait polls (``POLL_S``) with clients that do not retry, and a timeout names the
node that kept it waiting with the last lines of its log. A node whose log shows AOF
replay errors is refused (:class:`~qasearch.cluster.localnodes.ReplayError`):
acknowledged data would be missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from qasearch.cluster import durability
from qasearch.cluster.localnodes import (
    POLL_S,
    ClusterError,
    NodeSpec,
    PortInUse,
    ReplayError,
    log_tail,
)
from qasearch.core.credentials import secret_file
from qasearch.core.settings import Settings
from qasearch.core.topology import node_client

# --------------------------------------------------------------------------- clients


def local_client(settings: Settings, ip: str, port: int) -> redis.Redis:
    # No retries: polling a node that is still starting must fail fast, not back off.
    return node_client(
        ip, port, settings, decode_responses=True, socket_timeout=2,
        socket_connect_timeout=1, retry=Retry(NoBackoff(), 0),
    )


def auth_hint(settings: Settings, port: int, exc: Exception) -> str:
    return (f"node {port} refused user {settings.redis_username!r} with this password: check "
            f"QASEARCH_REDIS_PASSWORD or the file `qasearch cluster up` generated "
            f"({secret_file(settings.data_dir, settings.secrets_dir)}); "
            f"server said: {str(exc)[:80]}")


def wait_for(
    what: str, timeout: float, probe: Callable[[], tuple[bool, str, NodeSpec | None]]
) -> None:
    """Poll ``probe`` -> (done, why_not, culprit) until done; raise naming the culprit."""
    deadline = time.monotonic() + timeout
    while True:
        done, why, culprit = probe()
        if done:
            return
        if time.monotonic() > deadline:
            detail = f"\nlast lines of {culprit.logfile}:\n{log_tail(culprit)}" if culprit else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}: {why}{detail}")
        time.sleep(POLL_S)


def _bind_failed(spec: NodeSpec, offset: int) -> bool:
    try:
        with open(spec.logfile, "rb") as f:
            f.seek(offset)
            return b"Address already in use" in f.read()
    except OSError:
        return False


def wait_ping(
    settings: Settings, specs: list[NodeSpec], clients: dict[int, redis.Redis],
    offsets: dict[int, int], timeout: float,
) -> None:
    def probe() -> tuple[bool, str, NodeSpec | None]:
        for spec in specs:
            try:
                clients[spec.port].ping()
            except redis.AuthenticationError as exc:
                raise ClusterError(auth_hint(settings, spec.port, exc)) from None
            except redis.RedisError as exc:
                # Lost a race for the port between our probe and Redis's bind.
                if spec.port in offsets and _bind_failed(spec, offsets[spec.port]):
                    raise PortInUse(
                        f"node {spec.port} could not bind:\n{log_tail(spec)}"
                    ) from None
                _check_replay([spec], offsets)  # e.g. it exited on a bad AOF
                return False, f"node {spec.port} does not answer PING ({exc})", spec
        return True, "", None

    wait_for("nodes to answer", timeout, probe)
    _check_replay(specs, offsets)  # a node answers PING only once its AOF is loaded


def _check_replay(specs: list[NodeSpec], offsets: dict[int, int]) -> None:
    """Raise ReplayError for the first node started now whose log shows AOF replay errors."""
    for spec in specs:
        if spec.port in offsets:
            why = durability.replay_failure(spec.port, spec.logfile, offsets[spec.port])
            if why:
                raise ReplayError(why)


def nodes_by_port(reply: dict) -> dict[int, dict]:
    """redis-py's parsed CLUSTER NODES keyed by port (addresses are ``ip:port``; ports are
    unique across the hosts of a layout)."""
    out = {}
    for addr, info in reply.items():
        host, port = addr.split("@")[0].rsplit(":", 1)
        out[int(port)] = {**info, "flags": set(info["flags"].split(",")), "port": int(port),
                          "host": host}
    return out


def node_ready(spec: NodeSpec, client: redis.Redis, count: int) -> str:
    """Empty if the node is ok and sees ``count`` healthy nodes; else why not."""
    info = client.cluster("INFO")
    if info.get("cluster_state") != "ok":
        return f"node {spec.port} has cluster_state:{info.get('cluster_state')}"
    view = nodes_by_port(client.cluster("NODES"))
    bad = {"fail", "fail?", "handshake", "noaddr"}
    if len(view) != count or any(v["flags"] & bad for v in view.values()):
        return f"node {spec.port} sees {len(view)}/{count} healthy nodes"
    repl = client.info("replication")
    if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
        return f"replica {spec.port} link to its master is {repl.get('master_link_status')}"
    return ""


def wait_ready(
    specs: list[NodeSpec], clients: dict[int, redis.Redis], timeout: float
) -> None:
    def probe() -> tuple[bool, str, NodeSpec | None]:
        views = []
        for spec in specs:
            try:
                why = node_ready(spec, clients[spec.port], len(specs))
                if not why:
                    view = nodes_by_port(clients[spec.port].cluster("NODES"))
                    views.append({p: "slave" in v["flags"] for p, v in view.items()})
            except redis.RedisError as exc:
                why = f"node {spec.port}: {exc}"
            if why:
                return False, why, spec
        # Roles propagate by gossip; wait until every node agrees who replicates whom.
        if any(v != views[0] for v in views):
            return False, "nodes disagree about which nodes are replicas", None
        return True, "", None

    wait_for("cluster_state:ok on every node", timeout, probe)


