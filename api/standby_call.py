"""The gateway's side of a standby worker's channel (gears/standby.py).

A request a master cannot answer is published on the standby channel of the
master's node tag, on the node of one of its replicas; the reply comes back on a
channel of its own, to which the call subscribes (and waits for Redis to confirm
it) before publishing, so the reply cannot arrive before anyone listens.
``PUBLISH`` returns how many clients of that node received the message: 0 means
no standby listens there, and the next replica is tried at once.
"""

from __future__ import annotations

import json
import time
import uuid

import redis

from qasearch import keys
from qasearch.standbywire import encode_request

SUBSCRIBE_WAIT_S = 1.0


class StandbyCall:
    """One request published to the standby beside ``replica``; :meth:`poll` its reply."""

    def __init__(self, replica: str, pubsub: redis.client.PubSub) -> None:
        self.replica = replica
        self._pubsub = pubsub

    @classmethod
    def start(cls, client: redis.Redis, replica: str, node_id: str,
              fields: dict[str, object]) -> StandbyCall | None:
        """Publish ``fields`` to the standby beside node ``node_id`` through ``client``
        (that node); None when no standby listens there."""
        channel = keys.standby_reply(uuid.uuid4().hex)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(channel)
            confirmed = pubsub.get_message(timeout=SUBSCRIBE_WAIT_S)
            if not confirmed or confirmed.get("type") != "subscribe":
                raise redis.ConnectionError("no subscribe confirmation")
            heard = client.publish(keys.standby_channel(node_id),
                                   encode_request(channel, fields))
        except redis.RedisError:
            pubsub.close()
            return None
        if not heard:
            pubsub.close()
            return None
        return cls(replica, pubsub)

    def poll(self, timeout_s: float) -> dict | None:
        """The reply if it arrives within ``timeout_s``; None otherwise (or on an error)."""
        ends = time.monotonic() + max(0.0, timeout_s)
        try:
            while True:
                left = ends - time.monotonic()
                message = self._pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=max(0.0, left))
                if message is not None and message.get("type") == "message":
                    return json.loads(message["data"])
                if left <= 0:
                    return None
        except redis.RedisError:
            return None

    def close(self) -> None:
        self._pubsub.close()
