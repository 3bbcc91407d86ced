"""Connections and cluster topology: who the masters are and which slots they own.

Workers talk to exactly one node (:func:`node_client`); loaders and the gateway use
either a cluster client (:func:`cluster_client`, which routes by key slot) or one
node client per master (:func:`masters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.utils import str_if_bytes

from qasearch.core import hostlayout
from qasearch.core.partitions import SlotRange, node_tag
from qasearch.core.settings import Settings


@dataclass(frozen=True)
class Master:
    """A master node, the slot ranges it owns, its node tag and its replicas' addresses
    (``(host, port)``, as ``CLUSTER SLOTS`` lists them: healthy replicas only)."""

    host: str
    port: int
    node_id: str
    ranges: tuple[SlotRange, ...]
    replicas: tuple[tuple[str, int], ...] = ()
    replica_ids: tuple[str, ...] = ()  # the node ids of ``replicas``, in the same order

    @property
    def tag(self) -> str:
        return node_tag(self.ranges)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def startup_nodes(settings: Settings) -> list[tuple[str, int]]:
    """Nodes to ask first: ``redis_url`` (comma-separated URLs) when set, else every node
    of the local layout on its host (``settings.hosts``), so that one dead node (a failed
    master) or one lost host never hides the rest."""
    if settings.redis_url:
        found = []
        for part in settings.redis_url.split(","):
            url = urlparse(part.strip())
            found.append((url.hostname or settings.host, url.port or settings.base_port))
        return found
    return [(p.host, p.port) for p in hostlayout.placements(settings)]


def _auth(settings: Settings) -> dict[str, str | None]:
    """AUTH <user> <password> on every new connection; nothing when there is no password."""
    if not settings.redis_password:
        return {"username": None, "password": None}
    return {"username": settings.redis_username or None, "password": settings.redis_password}


def node_client(host: str, port: int, settings: Settings, readonly: bool = False,
                **kwargs: object) -> redis.Redis:
    """A plain client bound to one node (no redirects followed).

    ``readonly``: every connection sends ``READONLY`` after its handshake, so a
    replica serves reads of its master's slots itself instead of answering
    ``-MOVED`` (on a master the command changes nothing). A standby worker uses it,
    and keeps using it when its node is promoted.
    """
    if readonly:
        kwargs["redis_connect_func"] = _connect_readonly
    return redis.Redis(host=host, port=port, **_auth(settings), **kwargs)


def _connect_readonly(connection: redis.connection.AbstractConnection) -> None:
    connection.on_connect()
    connection.send_command("READONLY")
    if str_if_bytes(connection.read_response()) != "OK":
        raise redis.ConnectionError("READONLY refused")


def cluster_client(settings: Settings, **kwargs: object) -> RedisCluster:
    """A cluster client that routes every command to the node owning its key."""
    nodes = [ClusterNode(host, port) for host, port in startup_nodes(settings)]
    return RedisCluster(startup_nodes=nodes, **_auth(settings), **kwargs)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def masters_from_slots(slots_reply: list) -> list[Master]:
    """Masters from a raw ``CLUSTER SLOTS`` reply, ordered by their first slot."""
    owned: dict[tuple[str, int, str], list[SlotRange]] = {}
    replicas: dict[tuple[str, int, str], dict[tuple[str, int], str]] = {}
    for entry in slots_reply:
        lo, hi, primary = int(entry[0]), int(entry[1]), entry[2]
        key = (_text(primary[0]), int(primary[1]), _text(primary[2]))
        owned.setdefault(key, []).append((lo, hi))
        for replica in entry[3:]:
            replicas.setdefault(key, {})[(_text(replica[0]), int(replica[1]))] = _text(replica[2])
    found = [
        Master(host=h, port=p, node_id=nid, ranges=tuple(sorted(r)),
               replicas=tuple(replicas.get((h, p, nid), {})),
               replica_ids=tuple(replicas.get((h, p, nid), {}).values()))
        for (h, p, nid), r in owned.items()
    ]
    return sorted(found, key=lambda m: m.ranges[0][0])


def masters(settings: Settings, via: tuple[str, int] | None = None) -> list[Master]:
    """The cluster's masters, as seen by ``via`` or else by the first startup node that
    answers; raises the last connection error when none does."""
    error: Exception | None = None
    for host, port in [via] if via else startup_nodes(settings):
        client = node_client(host, port, settings, socket_timeout=5, socket_connect_timeout=1,
                             retry=Retry(NoBackoff(), 0))  # a dead node: move on at once
        try:
            reply = client.execute_command("CLUSTER SLOTS", NEVER_DECODE=True)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            error = exc
            continue
        finally:
            client.close()
        found = masters_from_slots(reply)
        if found:
            return found
    raise error or redis.ConnectionError("no cluster node reports any slots")
