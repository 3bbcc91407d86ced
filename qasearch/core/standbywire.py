"""The channel to a standby worker (gears/standby.py): its message, spelled in one
place, and the caller's side of it (:class:`StandbyCall`).

A request on the node's request stream is a set of fields (``XADD``); the same
request published on a standby channel (``keys.standby_channel``, see
gears/standby.py) is one JSON text carrying those fields and the channel to reply
on. Field values that are bytes (the question's embedding) travel as base64.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import redis

from qasearch.core import keys


def encode_request(reply_channel: str, fields: dict[str, object]) -> str:
    text, binary = {}, {}
    for name, value in fields.items():
        if isinstance(value, bytes):
            binary[name] = base64.b64encode(value).decode("ascii")
        else:
            text[name] = str(value)
    return json.dumps({"reply": reply_channel, "fields": text, "binary": binary})


def decode_request(data: bytes | str) -> tuple[str, dict[bytes, bytes]]:
    """(reply channel, fields as a stream entry has them); ValueError when malformed."""
    try:
        message = json.loads(data)
        fields = {k.encode(): v.encode() for k, v in message["fields"].items()}
        fields.update({k.encode(): base64.b64decode(v) for k, v in message["binary"].items()})
        return str(message["reply"]), fields
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"malformed standby request: {exc}") from None


# --- the caller's side: the gateway, and `qasearch workers status` -------------
# A request is published on the standby channel of one replica node; the reply
# comes back on a channel of its own, to which the call subscribes (and waits for
# Redis to confirm it) before publishing, so the reply cannot arrive before anyone
# listens. PUBLISH returns how many clients of that node received the message: 0
# means no standby listens there, and the caller tries the next replica at once.
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
