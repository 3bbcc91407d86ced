"""Whether acknowledged data came back after a restart.

Two checks:

- :func:`replay_failure`: a node's log after a start. A Redis node rebuilds its data
  from the append-only file before it answers anything but ``LOADING``; a command the
  replay refuses is logged as ``== CRITICAL == This server is sending an error to its
  AOF-loading-client: '<error>' after processing the command '<name>'`` and skipped
  (the rest still loads), a file it cannot parse as ``Bad file format reading the
  append only file`` (the node exits). Either way acknowledged writes are gone, and
  nothing but the log says so. A tail cut short by a crash (``short read``, loaded
  anyway under ``aof-load-truncated yes``) is at most the last fsync interval and not
  reported.
- :func:`passage_count`: the passage index of every partition (``SCARD`` on its
  master) against the total the loaders recorded in ``keys.CORPUS_META``, a plain
  ``HINCRBY`` outside the transactions (see :mod:`loaders.writer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from qasearch.core import keys
from qasearch.core.partitions import in_ranges, owned_partitions, partition_tag
from qasearch.core.settings import Settings
from qasearch.core.topology import Master, node_client

REPLAY_ERROR_MARKERS = (
    "AOF-loading-client",
    "Bad file format reading the append only file",
    "NOPERM",
)


def first_replay_error(logfile: Path, offset: int = 0) -> str | None:
    """The first line of ``logfile`` after byte ``offset`` that reports a refused replayed
    command or an unreadable AOF; None when there is none (or no log)."""
    try:
        with logfile.open("rb") as f:
            f.seek(offset)
            for raw in f:
                line = raw.decode(errors="replace").strip()
                if any(marker in line for marker in REPLAY_ERROR_MARKERS):
                    return line
    except OSError:
        return None
    return None


def replay_failure(port: int, logfile: Path, offset: int = 0) -> str:
    """Why node ``port`` did not replay its AOF in full (from its log after ``offset``),
    or "" when it did."""
    line = first_replay_error(logfile, offset)
    if line is None:
        return ""
    return (f"node {port} did not replay its append-only file in full, so data acknowledged "
            f"before the restart is missing there; first error in {logfile}:\n  {line}\n"
            f"The nodes are left running; `qasearch cluster status` sets the passages "
            f"present against those the loaders recorded.")


def _client(settings: Settings, master: Master) -> redis.Redis:
    # A one-node cluster reports its own address with an empty host in CLUSTER SLOTS.
    return node_client(master.host or settings.host, master.port, settings, decode_responses=True,
                       socket_timeout=5, retry=Retry(NoBackoff(), 0))


def corpus_meta(settings: Settings, ms: Sequence[Master]) -> dict[str, str]:
    """``HGETALL keys.CORPUS_META`` on the master owning its slot; {} when unreadable."""
    slot = key_slot(keys.CORPUS_META.encode())
    owner = next((m for m in ms if in_ranges(slot, m.ranges)), None)
    if owner is None:
        return {}
    client = _client(settings, owner)
    try:
        return client.hgetall(keys.CORPUS_META)
    except redis.RedisError:
        return {}
    finally:
        client.close()


@dataclass(frozen=True)
class PassageCount:
    present: int | None  # in the partitions' indexes; None when a master did not answer
    recorded: int | None  # by the loaders; None for a corpus loaded before the record existed

    @property
    def missing(self) -> int:
        """Recorded passages that are not in any index (0 when either count is unknown)."""
        if self.present is None or self.recorded is None:
            return 0
        return max(0, self.recorded - self.present)


def passage_count(settings: Settings, ms: Sequence[Master], partitions: int,
                  meta: dict[str, str]) -> PassageCount:
    """Passages in the index of every partition, each read on the master owning it."""
    recorded = meta.get(keys.CORPUS_RECORDED)
    present: int | None = 0
    for master in ms:
        owned = owned_partitions(master.ranges, partitions)
        if not owned:
            continue
        client = _client(settings, master)
        try:
            pipe = client.pipeline(transaction=False)
            for p in owned:
                pipe.scard(keys.passage_index(partition_tag(p)))
            found = sum(pipe.execute())
            present = None if present is None else present + found
        except redis.RedisError:
            present = None
        finally:
            client.close()
    return PassageCount(present, int(recorded) if recorded is not None else None)
