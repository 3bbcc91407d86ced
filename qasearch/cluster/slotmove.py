"""Moving hash slots between masters of a running cluster, as ``redis-cli --cluster
rebalance`` does, plus a copy-then-switch move for partition slots.

Redis semantics relied on (Redis 7):

- ``CLUSTER SETSLOT s IMPORTING <src>`` on the target and ``MIGRATING <dst>`` on the
  source start a move. The source keeps serving the keys it still holds and answers
  ``-ASK`` for the others; the target serves the slot only after ``ASKING``.
- ``MIGRATE host port "" 0 timeout [COPY] REPLACE [AUTH2 user pass] KEYS k...`` moves
  (or, with ``COPY``, copies) keys atomically per batch: each key is on one node, or,
  with ``COPY``, on both with the same value.
- ``SETSLOT s NODE <dst>`` on the importing target ends its import and bumps its config
  epoch, so its claim wins over the source's in gossip; the source refuses ``NODE``
  while it still holds keys of the slot, so it is told after its keys are gone. Every
  other master is told too, so no node redirects to the old owner for long.

A *partition* slot (every key of a partition shares its hash tag) is moved so that a
worker always serves the partition from one of the two nodes, completely:

1. ``IMPORTING``/``MIGRATING``, then every key is *copied* (``MIGRATE COPY``) to the
   target, the partition's index set last. The source still holds everything and
   serves as before; the target's worker sees an importing slot with the index set
   present and loads the partition (gears.ownership, gears.asking) while the source
   still answers for it.
2. ``wait_loaded`` returns once the target's worker reports the partition loaded.
3. The target takes the slot (``NODE``), the source's keys are moved for good (index
   set first, overwriting the copies with the latest values) and the source and all
   other masters are told the new owner. From the moment its keys go, the source's
   worker gets redirects for the partition and leaves it out of what it serves.

The gateway counts a partition served by both nodes once (api.coverage). Loads of new
documents into a partition while it moves are not supported: run them before or after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis

from qasearch.core.settings import Settings

MIGRATE_BATCH = 100
MIGRATE_TIMEOUT_MS = 30_000
SETSLOT_BATCH = 1000


class SlotMoveError(RuntimeError):
    """A slot could not be moved as asked."""


@dataclass(frozen=True)
class Node:
    """A master to move slots between: its address, cluster id and a client bound to it."""

    host: str
    port: int
    node_id: str
    client: redis.Redis

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _setslot(node: Node, slots: Sequence[int], *state: str) -> None:
    for start in range(0, len(slots), SETSLOT_BATCH):
        pipe = node.client.pipeline(transaction=False)
        for slot in slots[start : start + SETSLOT_BATCH]:
            pipe.execute_command("CLUSTER SETSLOT", slot, *state)
        pipe.execute()


def _migrate(src: Node, dst: Node, names: Sequence[bytes], settings: Settings,
             copy: bool) -> None:
    auth: list[str] = []
    if settings.redis_password:
        auth = ["AUTH2", settings.redis_username or "default", settings.redis_password]
    for start in range(0, len(names), MIGRATE_BATCH):
        batch = list(names[start : start + MIGRATE_BATCH])
        src.client.execute_command(
            "MIGRATE", dst.host, dst.port, "", 0, MIGRATE_TIMEOUT_MS,
            *(["COPY"] if copy else []), "REPLACE", *auth, "KEYS", *batch,
        )


def keys_in_slot(node: Node, slot: int) -> list[bytes]:
    """Every key ``node`` holds in ``slot`` (CLUSTER GETKEYSINSLOT reads local data only)."""
    count = int(node.client.execute_command("CLUSTER COUNTKEYSINSLOT", slot))
    if count == 0:
        return []
    return list(node.client.execute_command("CLUSTER GETKEYSINSLOT", slot, count))


def _drain(src: Node, dst: Node, slot: int, settings: Settings, first: bytes | None = None,
           rounds: int = 1000) -> None:
    """Move every key of ``slot`` from ``src`` to ``dst`` (``first`` before the rest)."""
    for _ in range(rounds):
        names = keys_in_slot(src, slot)
        if not names:
            return
        if first is not None and first in names:
            names.remove(first)
            names.insert(0, first)
        try:
            _migrate(src, dst, names, settings, copy=False)
        except redis.exceptions.MovedError:
            # the source learnt of the new owner by gossip and dropped the slot's keys
            # itself (Redis deletes keys of a slot it lost); look again
            continue
    raise SlotMoveError(f"slot {slot} of {src.address} keeps getting new keys")


def _announce(slots: Sequence[int], dst: Node, src: Node, others: Iterable[Node],
              settings: Settings) -> None:
    _setslot(dst, slots, "NODE", dst.node_id)
    for _ in range(3):
        try:
            _setslot(src, slots, "NODE", dst.node_id)
            break
        except redis.ResponseError as exc:
            if "hold keys" not in str(exc):
                raise
            # a key written between the drain and now (an update of an existing key
            # stays on a migrating source): move it too, then tell the source again
            for slot in slots:
                _drain(src, dst, slot, settings)
    else:
        raise SlotMoveError(f"{src.address} still holds keys of slots it gave away")
    for node in others:
        if node.node_id not in (src.node_id, dst.node_id):
            _setslot(node, slots, "NODE", dst.node_id)


def move_slots(src: Node, dst: Node, slots: Sequence[int], others: Iterable[Node],
               settings: Settings) -> int:
    """Move ``slots`` (not partition slots) with their keys; returns keys moved."""
    slots = list(slots)
    if not slots:
        return 0
    _setslot(dst, slots, "IMPORTING", src.node_id)
    _setslot(src, slots, "MIGRATING", dst.node_id)
    moved = 0
    pipe = src.client.pipeline(transaction=False)
    for slot in slots:
        pipe.execute_command("CLUSTER COUNTKEYSINSLOT", slot)
    for slot, count in zip(slots, pipe.execute()):
        if int(count):
            moved += int(count)
            _drain(src, dst, slot, settings)
    _announce(slots, dst, src, others, settings)
    return moved


def move_partition(src: Node, dst: Node, slot: int, index_key: bytes, others: Iterable[Node],
                   settings: Settings, wait_loaded: Callable[[], None]) -> int:
    """Copy-then-switch move of one partition slot (module doc); returns keys moved.

    A partition without an index set (no document hashed to it) has nothing to serve:
    it moves like a plain slot, without waiting for the target's worker.
    """
    _setslot(dst, [slot], "IMPORTING", src.node_id)
    _setslot(src, [slot], "MIGRATING", dst.node_id)
    held = keys_in_slot(src, slot)
    names = [k for k in held if k != index_key]
    _migrate(src, dst, names, settings, copy=True)
    if index_key in held:
        _migrate(src, dst, [index_key], settings, copy=True)  # last: "all keys are here"
        wait_loaded()
    _setslot(dst, [slot], "NODE", dst.node_id)
    _drain(src, dst, slot, settings, first=index_key)
    _announce([slot], dst, src, others, settings)
    return len(held)
