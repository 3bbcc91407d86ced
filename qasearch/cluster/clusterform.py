"""Form a Redis Cluster out of running, empty nodes on any hosts (docker-compose's init).

``qasearch cluster up`` starts its own loopback nodes (:mod:`qasearch.cluster.localcluster`);
here the nodes already run elsewhere, one per container, all on the same port,
each known by a host name. The layout is the local one: the first ``masters``
nodes are masters, node ``masters * (1 + r) + m`` is replica ``r`` of master ``m``.

Redis semantics relied on:

- ``CLUSTER MEET`` wants an IP address, so host names are resolved first; the
  nodes announce their host names themselves (``cluster-announce-hostname``).
- Slots are not cut evenly: each master gets its range from
  :func:`qasearch.core.partitions.balanced_slot_ranges` (``CLUSTER ADDSLOTSRANGE``)
  and a distinct config epoch, as the local cluster does.
- Forming is idempotent: nodes that already belong to a cluster with all 16384
  slots assigned are left alone, so the init container can run again.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import redis

from qasearch.core.partitions import SLOTS, balanced_slot_ranges
from qasearch.core.settings import Settings
from qasearch.core.topology import node_client


class FormError(RuntimeError):
    """The nodes could not be formed into a cluster as asked."""


@dataclass(frozen=True)
class Node:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_nodes(spec: str) -> list[Node]:
    """``"redis-1:6379,redis-2:6379"`` -> nodes; a clear error for anything else."""
    nodes = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise FormError(f"node {part!r} is not HOST:PORT")
        nodes.append(Node(host, int(port)))
    if not nodes:
        raise FormError("no nodes given")
    return nodes


def _wait(what: str, timeout: float, probe) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            done, last = probe()
        except (redis.RedisError, OSError) as exc:
            done, last = False, str(exc)
        if done:
            return
        time.sleep(0.2)
    raise FormError(f"timed out after {timeout:.0f}s waiting for {what}: {last}")


def _info(client: redis.Redis) -> dict:
    return client.cluster("INFO")


def form(
    settings: Settings, nodes: list[Node], masters: int, partitions_per_master: int,
    timeout: float = 120.0,
) -> bool:
    """Make ``nodes`` one cluster; True when it was formed now, False when it already was."""
    if masters < 1 or len(nodes) % masters:
        raise FormError(f"{len(nodes)} nodes cannot be {masters} masters with equal replicas")
    clients = [node_client(n.host, n.port, settings, socket_timeout=10) for n in nodes]
    try:
        for node, client in zip(nodes, clients):
            _wait(f"{node.address} to answer PING", timeout, lambda c=client: (c.ping(), "no PONG"))
        infos = [_info(c) for c in clients]
        if all(int(i["cluster_slots_assigned"]) == SLOTS for i in infos):
            formed_now = False
        elif all(int(i["cluster_known_nodes"]) == 1 and int(i["cluster_slots_assigned"]) == 0
                 for i in infos):
            _create(nodes, clients, masters, partitions_per_master, timeout)
            formed_now = True
        else:
            raise FormError("some nodes already belong to a cluster and some do not; "
                            "remove the nodes' volumes to start again")

        def all_ok() -> tuple[bool, str]:
            for node, client in zip(nodes, clients):
                state = _info(client)["cluster_state"]
                if state != "ok":
                    return False, f"{node.address} is {state}"
            return True, ""

        _wait("cluster_state ok on every node", timeout, all_ok)
        return formed_now
    finally:
        for client in clients:
            client.close()


def _create(nodes: list[Node], clients: list[redis.Redis], masters: int,
            partitions_per_master: int, timeout: float) -> None:
    ranges = balanced_slot_ranges(masters, partitions_per_master)
    for epoch, (client, (lo, hi)) in enumerate(zip(clients[:masters], ranges), start=1):
        client.cluster("SET-CONFIG-EPOCH", epoch)
        client.execute_command("CLUSTER ADDSLOTSRANGE", lo, hi)
    ips = [socket.gethostbyname(n.host) for n in nodes]
    for node, ip in zip(nodes[1:], ips[1:]):
        clients[0].cluster("MEET", ip, node.port)

    def everyone_known() -> tuple[bool, str]:
        for node, client in zip(nodes, clients):
            known = int(_info(client)["cluster_known_nodes"])
            if known < len(nodes):
                return False, f"{node.address} knows {known}/{len(nodes)} nodes"
        return True, ""

    _wait("the nodes to meet", timeout, everyone_known)
    ids = [_text(c.cluster("MYID")) for c in clients[:masters]]
    for i, (node, client) in enumerate(zip(nodes, clients)):
        if i < masters:
            continue

        def replicate(c=client, master_id=ids[i % masters]) -> tuple[bool, str]:
            try:  # refused until gossip has told the replica about its master
                c.cluster("REPLICATE", master_id)
            except redis.ResponseError as exc:
                return False, str(exc)
            return True, ""

        _wait(f"{node.address} to replicate its master", timeout, replicate)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
