"""A master's worker heartbeat: the hash ``keys.worker_state(node tag)``.

The worker serving a master rewrites it every second (:mod:`gears.housekeeping`) with its
pid, node, model, readiness and counters, and it expires when nobody does. Everything
that asks "is this shard served?" reads it through here: ``workers start --wait``,
``workers status``, chaos, the gateway's ``/readyz`` and its hedging, and the tests.

The hash is data of the node, so its replica holds a copy. Right after a failover the
promoted node therefore shows the last heartbeat of its dead predecessor's worker, and
that copy looks fresh for a few seconds. The worker writes its node's cluster id
(``node_id``); :func:`read` adds the id of the master it was read from, and
:func:`is_ready` refuses a heartbeat written for another node.
"""

from __future__ import annotations

import time

import redis

from qasearch.core import keys
from qasearch.core.topology import Master

FRESH_S = 5.0  # ready only with a heartbeat this recent (it is written every second)
SILENT_S = 2.5  # the gateway's hedging: a worker this long silent is taken as gone


def read(client: redis.Redis, master: Master) -> dict[str, str]:
    """The heartbeat on ``master``'s node (``client`` talks to that node)."""
    return read_node(client, master.tag, master.address, master.node_id)


def read_node(client: redis.Redis, tag: str, address: str, node_id: str) -> dict[str, str]:
    """The heartbeat of node tag ``tag`` on the node at ``address`` (cluster id
    ``node_id``), decoded, with ``master`` (the address), ``master_id``, ``host`` and
    ``tag`` added; only those four when no worker writes one."""
    raw = client.hgetall(keys.worker_state(tag))
    state = {_text(k): _text(v) for k, v in raw.items()}
    return {"master": address, "master_id": node_id, "host": address.rsplit(":", 1)[0],
            "tag": tag, **state}


def age_s(state: dict[str, str]) -> float:
    """Seconds since the heartbeat was written (infinite when there is none)."""
    written = state.get("heartbeat")
    return time.time() - float(written) if written else float("inf")


def of_this_node(state: dict[str, str]) -> bool:
    """False for the copy of a previous master's heartbeat that a promoted replica holds."""
    written_for, read_from = state.get("node_id"), state.get("master_id")
    return not (written_for and read_from) or written_for == read_from


def is_ready(state: dict[str, str], fresh_s: float = FRESH_S) -> bool:
    """The node's own worker says it is ready, in a heartbeat of the last few seconds."""
    return state.get("ready") == "1" and age_s(state) < fresh_s and of_this_node(state)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
