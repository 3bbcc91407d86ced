"""What a worker beside a replica does: answer for its master, from the replica's copy.

A standby worker runs beside every replica, with the model loaded and its
master's partitions indexed from the replica's own data (dense and BM25), so that
when the master cannot answer (dead, or past the gateway's per-shard deadline)
the replica's node still can. On promotion it becomes the node's worker as it
is: nothing is loaded again (``gears.housekeeping``).

Two channels, chosen because a replica refuses every write command:

* **Requests** come over pub/sub (``keys.standby_channel``): ``PUBLISH`` and
  ``SUBSCRIBE`` are not writes, so a replica accepts them whatever state its
  master is in. In a cluster ``PUBLISH`` is broadcast to every node over the
  cluster bus; that costs one bus message per node per request, and only the
  fallback path pays it. The gateway subscribes to a reply channel of its own
  (``keys.standby_reply``) on the same replica before it publishes, and
  ``PUBLISH``'s count of receivers tells it at once when no standby listens.
  A message published while nobody listens is lost, which the gateway's
  deadline covers: nothing waits on it forever.
* **Changes** come from the partitions' ingest streams read with plain
  ``XREAD`` from the last id seen (:class:`IngestTail`): a consumer group would
  need ``XREADGROUP``/``XACK``, which are writes. The standby embeds changed
  passages itself rather than wait for the master's worker to store their
  tensors, so its index never depends on the master being alive.

Answers a standby computes are marked ``standby`` and never written to the
answer cache while the node is a replica (``AnswerEngine.read_only``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import redis

from gears.node_data import ingest_changes
from qasearch.core import keys
from qasearch.core.partitions import partition_tag
from qasearch.core.standbywire import decode_request

log = logging.getLogger("qasearch.standby")

POLL_S = 0.5
INGEST_BATCH = 256


class StandbyListener:
    """Requests published on this node's standby channel, each answered on its reply
    channel by ``answer(fields) -> payload`` on the worker's request pool.

    The channel is named by the node's id, so only the worker beside this node takes
    its requests. It keeps listening after a promotion, so that a gateway which has
    not yet seen the new topology is still answered by the same worker.
    """

    def __init__(self, client: redis.Redis, answer: Callable[[dict[bytes, bytes]], dict],
                 submit: Callable, stopping: threading.Event) -> None:
        self._client = client
        self._answer = answer
        self._submit = submit
        self._stopping = stopping

    def run(self) -> None:
        while not self._stopping.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                node_id = self._client.execute_command("CLUSTER MYID")
                node_id = node_id.decode() if isinstance(node_id, bytes) else node_id
                pubsub.subscribe(keys.standby_channel(node_id))
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is not None:
                        self._submit(self._reply, message["data"])
            except redis.RedisError as exc:
                log.warning("standby channel: %s", exc)
                self._stopping.wait(POLL_S)
            finally:
                pubsub.close()

    def _reply(self, data: bytes) -> None:
        try:
            reply_to, fields = decode_request(data)
        except ValueError as exc:
            log.warning("standby channel: %s; dropped", exc)
            return
        payload = self._answer(fields)
        try:
            self._client.publish(reply_to, json.dumps(payload))
        except redis.RedisError as exc:  # the gateway's deadline covers a lost reply
            log.warning("standby reply on %s: %s", reply_to, exc)


class IngestTail:
    """The position reached in each partition's ingest stream, read without a group.

    :meth:`mark` takes the stream's current end before the partition is indexed
    from the replica's data, so that every change made while (or after) the index
    is built is read by the next :meth:`poll`: a change is at worst applied twice,
    which is harmless (upserts and removals), never missed.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._positions: dict[int, bytes] = {}

    def mark(self, part: int) -> None:
        last = self._client.xrevrange(keys.ingest_stream(partition_tag(part)), count=1)
        self._positions[part] = last[0][0] if last else b"0-0"

    def forget(self, part: int | None = None) -> None:
        if part is None:
            self._positions.clear()
        else:
            self._positions.pop(part, None)

    def tracked(self, part: int) -> bool:
        return part in self._positions

    def poll(self) -> dict[int, tuple[list[str], list[str]]]:
        """{partition: (changed pids, deleted pids)} appended since the last poll."""
        if not self._positions:
            return {}
        parts = list(self._positions)
        pipe = self._client.pipeline(transaction=False)
        for part in parts:  # one XREAD per stream: each partition is a slot of its own
            pipe.xread({keys.ingest_stream(partition_tag(part)): self._positions[part]},
                       count=INGEST_BATCH)
        changes: dict[int, tuple[list[str], list[str]]] = {}
        for part, reply in zip(parts, pipe.execute()):
            entries = [e for _, stream_entries in reply or [] for e in stream_entries]
            if not entries:
                continue
            changes[part] = ingest_changes(entries)
            self._positions[part] = entries[-1][0]
        return changes

