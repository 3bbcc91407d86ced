"""Which partitions a set of shard replies covers, and whom to ask.

Each worker reply lists the partitions it ``served`` (gears.answering). While a
partition moves to another node (``qasearch cluster add-node``), both nodes may
serve it for a moment: it counts once, from the node the gateway's topology names
as its owner (else the first reply that has it), and the other reply's answers for
it are dropped. A partition no reply covered is *missing*; the gateway then reads
the topology again and asks the partition's owner once more, within the deadline
(the slot may have switched after the gateway last read the topology).
"""

from __future__ import annotations

from collections.abc import Iterable

from api.fanout import ShardReply
from qasearch.core.partitions import in_ranges, owned_partitions, partition_tag, slot_of_tag
from qasearch.core.topology import Master


def served(reply: ShardReply, partitions: int) -> list[str]:
    """The partitions a reply covers (a worker without ``served``: those its slots hold)."""
    listed = reply.payload.get("served")
    if listed is None:
        return [partition_tag(p) for p in owned_partitions(reply.master.ranges, partitions)]
    return list(listed)


def assign(
    replies: Iterable[ShardReply], partitions: int
) -> tuple[dict[str, ShardReply], list[str]]:
    """(partition tag -> the one reply that counts for it, tags no reply covered)."""
    ok = [r for r in replies if r.ok]
    assigned: dict[str, ShardReply] = {}
    for owner_first in (True, False):
        for r in ok:
            for tag in served(r, partitions):
                if not owner_first or in_ranges(slot_of_tag(tag), r.master.ranges):
                    assigned.setdefault(tag, r)
    missing = [t for t in map(partition_tag, range(partitions)) if t not in assigned]
    return assigned, missing


def targets(masters: list[Master], partitions: int) -> list[Master]:
    """Masters worth asking: those owning a partition (all of them while the partition
    count is unknown). A master with none, e.g. one ``cluster add-node`` just started
    whose worker may still be loading, would only add a shard that cannot answer."""
    if partitions <= 0:
        return masters
    return [m for m in masters if owned_partitions(m.ranges, partitions)]


def owners_of(masters: list[Master], tags: Iterable[str]) -> list[Master]:
    slots = [slot_of_tag(t) for t in tags]
    return [m for m in masters if any(in_ranges(s, m.ranges) for s in slots)]


def combine(first: list[ShardReply], again: list[ShardReply]) -> list[ShardReply]:
    """First-round replies with those of the masters asked again replaced."""
    by_node = {r.node: r for r in first}
    by_node.update({r.node: r for r in again})
    return list(by_node.values())
