"""Every node of the cluster, masters and replicas, with its address, role and health.

Read from ``CLUSTER SHARDS`` (Redis 7): unlike ``CLUSTER SLOTS`` it lists a replica
that is still syncing or loading (``CLUSTER SLOTS`` leaves such replicas out until
their replication offset moves, so a supervisor reading it would stop and start a
standby worker whenever its node restarts), a master that owns no slot yet, and the
health of each node, so a failed node is told from a slow one.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from qasearch.core import hostlayout
from qasearch.core.settings import Settings
from qasearch.core.topology import node_client, startup_nodes


@dataclass(frozen=True)
class Node:
    """One node: ``host`` is the endpoint clients are told to use (an address, or the
    announced host name where nodes prefer names, as in docker-compose); ``ip`` its IP."""

    host: str
    port: int
    ip: str
    node_id: str
    role: str  # master | replica
    health: str  # online | loading | fail (Redis 7.0 says "fail"; its docs say "failed")
    hostname: str = ""

    @property
    def failed(self) -> bool:
        return self.health in ("fail", "failed")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def on(self, host: str) -> bool:
        """Whether this node lives on ``host`` (an address or a name, resolved)."""
        return any(name and hostlayout.same_host(host, name)
                   for name in (self.host, self.ip, self.hostname))


def _nodes_from_shards(reply: list) -> list[Node]:
    found: dict[tuple[str, int], Node] = {}
    for shard in reply:
        for n in shard["nodes"]:
            ip = n.get("ip", "")
            host = n.get("endpoint") or ip
            if not host or host == "?":
                continue  # a node whose address is not known yet (a handshake)
            node = Node(host, int(n["port"]), ip, n["id"], n["role"], n["health"],
                        n.get("hostname", ""))
            found[(node.host, node.port)] = node
    return sorted(found.values(), key=lambda n: (n.port, n.host))


def cluster_nodes(settings: Settings, via: list[tuple[str, int]] | None = None) -> list[Node]:
    """Every node, as the first of ``via`` (else of the startup nodes) that answers sees
    them; raises the last connection error when none does."""
    error: Exception | None = None
    for host, port in via or startup_nodes(settings):
        client = node_client(host, port, settings, decode_responses=True, socket_timeout=5,
                             socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            found = _nodes_from_shards(client.execute_command("CLUSTER SHARDS"))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            error = exc
            continue
        finally:
            client.close()
        if found:
            return found
    raise error or redis.ConnectionError("no cluster node answers CLUSTER SHARDS")
