"""Which partitions this node owns right now, read from the node itself.

A worker asks its own node for ``CLUSTER SLOTS``, finds its own slot ranges, and
keeps the partitions whose tag hashes into them and whose index key exists on
the node. Asked again every second, this notices new partitions (first load),
rebalances and promotions without any coordination.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from qasearch import keys
from qasearch.partitions import MAX_PARTITIONS, SlotRange, node_tag, owned_partitions, partition_tag
from qasearch.topology import masters_from_slots


@dataclass(frozen=True)
class Ownership:
    ranges: tuple[SlotRange, ...]
    node_tag: str | None
    partitions: tuple[int, ...]

    @property
    def is_master(self) -> bool:
        return bool(self.ranges)

    def tags(self) -> list[str]:
        return [partition_tag(p) for p in self.partitions]


class OwnershipTracker:
    def __init__(self, client: redis.Redis, host: str, port: int) -> None:
        self._client = client
        self._address = (host, port)
        self._candidates: dict[tuple[SlotRange, ...], list[int]] = {}

    def _own_ranges(self) -> tuple[SlotRange, ...]:
        reply = self._client.execute_command("CLUSTER SLOTS", NEVER_DECODE=True)
        myid = self._client.execute_command("CLUSTER MYID")
        myid = myid.decode() if isinstance(myid, bytes) else myid
        for master in masters_from_slots(reply):
            if master.node_id == myid:
                return master.ranges
        return ()

    def read(self) -> Ownership:
        ranges = self._own_ranges()
        if not ranges:
            return Ownership(ranges=(), node_tag=None, partitions=())
        candidates = self._candidates.get(ranges)
        if candidates is None:
            candidates = owned_partitions(ranges, MAX_PARTITIONS)
            self._candidates = {ranges: candidates}
        pipe = self._client.pipeline(transaction=False)
        for p in candidates:
            pipe.exists(keys.passage_index(partition_tag(p)))
        present = pipe.execute()
        parts = tuple(p for p, found in zip(candidates, present) if found)
        return Ownership(ranges=ranges, node_tag=node_tag(ranges), partitions=parts)
