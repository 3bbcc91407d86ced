"""The partition map: which partition a document lives in, and which node owns it.

The corpus is split into P partitions. Partition ``i`` is the Redis hash tag
``p{i:02d}`` (keys look like ``qa:passage{p05}:...``), so every key of a partition
hashes to one slot and a partition lives on one node and moves as a whole.

Hash slots of the tags are spread unevenly by CRC16, so ``cluster up`` does not
cut the 16384 slots into equal ranges: it cuts them so that every master owns the
same number of the first ``masters * partitions_per_master`` partition tags.

Keys that must exist on *every* master (request stream, model package, stats)
use a node tag: the first ``n{i}`` whose slot the node owns.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

from redis.crc import key_slot

SLOTS = 16384
MAX_PARTITIONS = 4096

SlotRange = tuple[int, int]  # inclusive, as CLUSTER SLOTS reports them


def partition_tag(index: int) -> str:
    """The hash tag (without braces) of partition ``index``: ``p00``, ``p01``, ..."""
    if not 0 <= index < MAX_PARTITIONS:
        raise ValueError(f"partition index {index} out of range 0..{MAX_PARTITIONS - 1}")
    return f"p{index:02d}"


def partition_index(tag: str) -> int:
    """Inverse of :func:`partition_tag`."""
    if not (tag.startswith("p") and tag[1:].isdigit()):
        raise ValueError(f"not a partition tag: {tag!r}")
    return int(tag[1:])


def slot_of_tag(tag: str) -> int:
    """The cluster slot of every key carrying ``{tag}``."""
    return key_slot(("{" + tag + "}").encode())


def partition_for_doc(doc_id: str, partitions: int) -> int:
    """Stable partition of a document: all its passages live together."""
    return zlib.crc32(doc_id.encode("utf-8")) % partitions


def in_ranges(slot: int, ranges: Iterable[SlotRange]) -> bool:
    return any(lo <= slot <= hi for lo, hi in ranges)


def balanced_slot_ranges(masters: int, partitions_per_master: int) -> list[SlotRange]:
    """One contiguous slot range per master, each owning ``partitions_per_master`` partitions.

    The first ``masters * partitions_per_master`` partition tags are sorted by slot and
    dealt out in runs; range boundaries fall halfway between neighbouring runs.
    """
    if masters < 1 or partitions_per_master < 1:
        raise ValueError("need at least one master and one partition per master")
    return partition_slot_ranges(masters, masters * partitions_per_master)


def partition_slot_ranges(masters: int, partitions: int) -> list[SlotRange]:
    """One contiguous slot range per master over the slots of ``partitions`` partition
    tags, dealt out in runs whose sizes differ by at most one (the first ones larger).

    With ``partitions = masters * k`` this is :func:`balanced_slot_ranges` ``(masters, k)``:
    the layout ``cluster up`` creates and ``cluster add-node`` rebalances to.
    """
    if masters < 1 or partitions < masters:
        raise ValueError(f"cannot deal {partitions} partitions over {masters} masters")
    slots = sorted(slot_of_tag(partition_tag(i)) for i in range(partitions))
    if len(set(slots)) != len(slots):
        raise ValueError("two partition tags share a slot; choose fewer partitions")
    sizes = [partitions // masters + (1 if m < partitions % masters else 0)
             for m in range(masters)]
    ranges: list[SlotRange] = []
    lo, dealt = 0, 0
    for m in range(masters - 1):
        dealt += sizes[m]
        hi = (slots[dealt - 1] + slots[dealt]) // 2
        ranges.append((lo, hi))
        lo = hi + 1
    ranges.append((lo, SLOTS - 1))
    return ranges


def node_tag(owned: Sequence[SlotRange]) -> str:
    """The hash tag (without braces) for keys that must live on the node owning ``owned``."""
    for i in range(SLOTS * 8):
        tag = f"n{i}"
        if in_ranges(slot_of_tag(tag), owned):
            return tag
    raise ValueError(f"no node tag found for slot ranges {list(owned)}")


def owned_partitions(owned: Sequence[SlotRange], partitions: int) -> list[int]:
    """Indexes of the partitions (out of ``partitions``) whose slot lies in ``owned``."""
    return [i for i in range(partitions) if in_ranges(slot_of_tag(partition_tag(i)), owned)]
