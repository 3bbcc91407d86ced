"""Which partitions this node owns right now, read from the node itself.

A worker asks its own node for ``CLUSTER SLOTS``, finds its own slot ranges, and
keeps the partitions whose tag hashes into them and whose index key exists on
the node. Asked again every second, this notices new partitions (first load),
rebalances and promotions without any coordination.

On a replica the same reading gives the slots of the node's master: a standby
worker (``gears.standby``) serves those partitions from the replica's copy, and
``Ownership.standby`` is True until the node is promoted.

It also reads the slots the node is *importing* (``CLUSTER NODES``, the
``[slot-<-source]`` entries of its own line): ``qasearch cluster add-node`` copies
a partition there before switching the slot, and writes the partition's index set
last, so a partition counts as importing only once all its keys are on the node.
The worker loads such a partition before the switch (see :mod:`gears.asking`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import redis

from gears.asking import AskingPipeline, is_redirect
from qasearch.core import keys
from qasearch.core.partitions import (
    MAX_PARTITIONS,
    SlotRange,
    node_tag,
    owned_partitions,
    partition_tag,
    slot_of_tag,
)
from qasearch.core.topology import masters_from_slots


@dataclass(frozen=True)
class Ownership:
    ranges: tuple[SlotRange, ...]
    node_tag: str | None
    partitions: tuple[int, ...]
    importing: tuple[int, ...] = ()  # copied here, slot not yet switched
    standby: bool = False  # a replica: ranges are its master's, the node refuses writes

    @property
    def is_master(self) -> bool:
        return bool(self.ranges) and not self.standby

    def tags(self) -> list[str]:
        return [partition_tag(p) for p in self.partitions]


class OwnershipTracker:
    def __init__(self, client: redis.Redis, host: str, port: int) -> None:
        self._client = client
        self._address = (host, port)
        self._candidates: dict[tuple[SlotRange, ...], list[int]] = {}
        self.node_id = ""  # the node's cluster id, once read (its heartbeat names it)

    def _own_ranges(self) -> tuple[tuple[SlotRange, ...], bool]:
        """The node's slot ranges and False, or its master's ranges and True on a replica."""
        reply = self._client.execute_command("CLUSTER SLOTS", NEVER_DECODE=True)
        myid = self._client.execute_command("CLUSTER MYID")
        myid = self.node_id = myid.decode() if isinstance(myid, bytes) else myid
        for master in masters_from_slots(reply):
            if master.node_id == myid:
                return master.ranges, False
        for entry in reply:
            if any(_text(node[2]) == myid for node in entry[3:]):
                primary = _text(entry[2][2])
                found = next(m for m in masters_from_slots(reply) if m.node_id == primary)
                return found.ranges, True
        return (), False

    def _importing(self) -> tuple[int, ...]:
        """Partitions whose slot this node imports and whose index set has arrived."""
        nodes = self._client.execute_command("CLUSTER NODES")
        me = next((info for info in nodes.values() if "myself" in info["flags"]), {})
        slots = [int(m["slot"]) for m in me.get("migrations", []) if m["state"] == "importing"]
        candidates = [p for slot in slots if (p := _partition_of_slot().get(slot)) is not None]
        if not candidates:
            return ()
        pipe = AskingPipeline(self._client)
        for p in candidates:
            pipe.exists(keys.passage_index(partition_tag(p)))
        present = pipe.execute(raise_on_error=False)
        return tuple(p for p, found in zip(candidates, present) if found is True or found == 1)

    def read(self) -> Ownership:
        ranges, standby = self._own_ranges()
        if not ranges:
            return Ownership(ranges=(), node_tag=None, partitions=())
        candidates = self._candidates.get(ranges)
        if candidates is None:
            candidates = owned_partitions(ranges, MAX_PARTITIONS)
            self._candidates = {ranges: candidates}
        pipe = self._client.pipeline(transaction=False)
        for p in candidates:
            pipe.exists(keys.passage_index(partition_tag(p)))
        # a partition whose keys are leaving (-ASK on a migrating slot) is no longer ours
        present = pipe.execute(raise_on_error=False)
        for found in present:
            if isinstance(found, Exception) and not is_redirect(found):
                raise found
        parts = tuple(p for p, found in zip(candidates, present) if found is True or found == 1)
        if standby:  # a replica copies its master's slots; it imports none itself
            return Ownership(ranges=ranges, node_tag=node_tag(ranges), partitions=parts,
                             standby=True)
        return Ownership(ranges=ranges, node_tag=node_tag(ranges), partitions=parts,
                         importing=self._importing())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@cache
def _partition_of_slot() -> dict[int, int]:
    """Slot -> partition index, for every possible partition tag (tags never share a slot
    among the partitions of one corpus, see partitions.balanced_slot_ranges)."""
    found: dict[int, int] = {}
    for p in range(MAX_PARTITIONS):
        found.setdefault(slot_of_tag(partition_tag(p)), p)
    return found
