"""The message a gateway publishes to a standby worker, spelled in one place.

A request on the node's request stream is a set of fields (``XADD``); the same
request published on a standby channel (``keys.standby_channel``, see
gears/standby.py) is one JSON text carrying those fields and the channel to reply
on. Field values that are bytes (the question's embedding) travel as base64.
"""

from __future__ import annotations

import base64
import json


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
