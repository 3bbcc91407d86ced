"""Connections and cluster topology: who the masters are and which slots they own.

Workers talk to exactly one node (:func:`node_client`); loaders and the gateway use
either a cluster client (:func:`cluster_client`, which routes by key slot) or one
node client per master (:func:`masters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import redis
from redis.cluster import ClusterNode, RedisCluster

from qasearch.partitions import SlotRange, node_tag
from qasearch.settings import Settings


@dataclass(frozen=True)
class Master:
    """A master node, the slot ranges it owns and its node tag."""

    host: str
    port: int
    node_id: str
    ranges: tuple[SlotRange, ...]

    @property
    def tag(self) -> str:
        return node_tag(self.ranges)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _startup(settings: Settings) -> tuple[str, int]:
    url = urlparse(settings.startup_url)
    return url.hostname or settings.host, url.port or settings.base_port


def _auth(settings: Settings) -> dict[str, str | None]:
    return {
        "username": settings.redis_username or None,
        "password": settings.redis_password or None,
    }


def node_client(host: str, port: int, settings: Settings, **kwargs: object) -> redis.Redis:
    """A plain client bound to one node (no redirects followed)."""
    return redis.Redis(host=host, port=port, **_auth(settings), **kwargs)


def cluster_client(settings: Settings, **kwargs: object) -> RedisCluster:
    """A cluster client that routes every command to the node owning its key."""
    host, port = _startup(settings)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port)], **_auth(settings), **kwargs
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def masters_from_slots(slots_reply: list) -> list[Master]:
    """Masters from a raw ``CLUSTER SLOTS`` reply, ordered by their first slot."""
    owned: dict[tuple[str, int, str], list[SlotRange]] = {}
    for entry in slots_reply:
        lo, hi, primary = int(entry[0]), int(entry[1]), entry[2]
        key = (_text(primary[0]), int(primary[1]), _text(primary[2]))
        owned.setdefault(key, []).append((lo, hi))
    found = [
        Master(host=h, port=p, node_id=nid, ranges=tuple(sorted(r)))
        for (h, p, nid), r in owned.items()
    ]
    return sorted(found, key=lambda m: m.ranges[0][0])


def masters(settings: Settings, via: tuple[str, int] | None = None) -> list[Master]:
    """The cluster's masters as seen by the startup node (or ``via``)."""
    host, port = via or _startup(settings)
    client = node_client(host, port, settings, socket_timeout=5)
    try:
        reply = client.execute_command("CLUSTER SLOTS", NEVER_DECODE=True)
    finally:
        client.close()
    return masters_from_slots(reply)
