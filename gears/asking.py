"""Reads that also reach a slot this node is importing, and tell a lost slot apart.

While ``qasearch cluster add-node`` moves a partition, its keys are first copied
to the target node with the slot in ``IMPORTING`` state there. A plain command on
an importing slot is answered ``-MOVED`` (the node does not own it yet); after
``ASKING`` the next command is served from the keys the node holds. On a slot the
node owns, ``ASKING`` changes nothing. So a worker that prefixes every read of a
partition with ``ASKING`` reads the same data before and after the switch.

A read of a slot the node has lost (``-MOVED``) or whose key has already left
(``-ASK`` from a migrating source) is a :class:`redis.ResponseError`; callers
drop that partition from what they report as served instead of failing.
"""

from __future__ import annotations

import redis
from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

# MovedError is a subclass of AskError; redis-py parses both from plain clients too.
REDIRECTS = (AskError, TryAgainError, ClusterDownError)


def absent_here(reply: object) -> bool:
    """True for ``-ASK``: the slot is migrating away and the key is not on this node.

    The mover copies a partition's keys (``MIGRATE COPY``) and deletes them only
    after the switch, so while the slot is migrating a key the partition has is
    still here; a probe answered ``-ASK`` means the partition has no such key on
    this node at all (an empty partition), which this node still answers for.
    ``-MOVED`` (the slot has switched) is not this.
    """
    return isinstance(reply, AskError) and not isinstance(reply, MovedError)


def is_redirect(reply: object) -> bool:
    """True for the error reply of a key whose slot is (or is moving) elsewhere."""
    return isinstance(reply, REDIRECTS)


class AskingPipeline:
    """A non-transactional pipeline that sends ``ASKING`` before every command.

    Use it like a redis-py pipeline (``pipe.hmget(...)``); :meth:`execute` returns
    the commands' replies only, with errors as exception objects when
    ``raise_on_error`` is False.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pipe = client.pipeline(transaction=False)

    def __getattr__(self, name: str):
        method = getattr(self._pipe, name)

        def queued(*args: object, **kwargs: object) -> AskingPipeline:
            self._pipe.execute_command("ASKING")
            method(*args, **kwargs)
            return self

        return queued

    def execute(self, raise_on_error: bool = True) -> list:
        replies = self._pipe.execute(raise_on_error=False)[1::2]
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies
