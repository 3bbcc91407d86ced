"""Which host each node of the layout lives on, and whether two addresses are one host.

The layout keeps its ports (``qasearch.cluster.localcluster``: masters on ``base_port ..
base_port+M-1``, replica ``r`` of master ``m`` on ``base_port + M*(1+r) + m``) and
spreads the nodes over the hosts of ``settings.hosts`` (``QASEARCH_HOSTS``, comma
separated; empty means the single ``settings.host``):

* master ``m`` lives on host ``m mod H``;
* its replica ``r`` lives on host ``(m + 1 + r) mod H``.

So with more than one host a replica never shares its master's host, and losing
one host loses at most one copy of each partition: every master that was on it
has a replica elsewhere to promote. Ports stay unique across all hosts, because
node folders, pid files and metrics target files are named by port.

Addresses are compared by what they resolve to, so ``--host redis-1`` matches a
node that ``CLUSTER SLOTS`` reports by its container IP, and a name matches the
address it stands for.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from functools import lru_cache

from qasearch.core.settings import Settings


@dataclass(frozen=True)
class Placement:
    """One node of the layout: its port, host, and its master's port (None: a master)."""

    port: int
    host: str
    master_port: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def hosts(settings: Settings) -> list[str]:
    """The layout's hosts, in order; ``[settings.host]`` when ``hosts`` is empty."""
    named = [h.strip() for h in settings.hosts.split(",") if h.strip()]
    if len(set(named)) != len(named):
        raise ValueError(f"QASEARCH_HOSTS={settings.hosts!r} names a host twice")
    return named or [settings.host]


def placements(settings: Settings) -> list[Placement]:
    """Every node of the layout, masters first, then replica 0 of each master, and so on."""
    on = hosts(settings)
    m, base = settings.masters, settings.base_port
    found = [Placement(base + i, on[i % len(on)]) for i in range(m)]
    for r in range(settings.replicas_per_master):
        for i in range(m):
            found.append(Placement(base + m * (1 + r) + i, on[(i + 1 + r) % len(on)], base + i))
    return found


def node_list(settings: Settings) -> str:
    """``host:port,...`` in layout order: what
    :func:`qasearch.cluster.clusterform.parse_nodes` takes (``QASEARCH_COMPOSE_NODES``) to
    form the same layout out of nodes on real hosts."""
    return ",".join(p.address for p in placements(settings))


@lru_cache(maxsize=256)
def _resolved(name: str) -> frozenset[str]:
    try:
        return frozenset(info[4][0] for info in socket.getaddrinfo(name, None))
    except (socket.gaierror, UnicodeError):
        return frozenset()


def resolve(name: str) -> frozenset[str]:
    """The addresses ``name`` stands for (itself for an address; empty when unknown).

    Cached: a container's address can change when it restarts, so callers that run
    for long clear the cache now and then (:func:`forget_resolved`)."""
    return _resolved(name.strip().lower())


def forget_resolved() -> None:
    _resolved.cache_clear()


def same_host(a: str, b: str) -> bool:
    """Whether the addresses or names ``a`` and ``b`` are one host."""
    if a.strip().lower() == b.strip().lower():
        return True
    return bool(resolve(a) & resolve(b))
