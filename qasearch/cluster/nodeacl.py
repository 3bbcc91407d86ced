"""The ACL part of a node's config, shared by ``qasearch cluster up`` and its scale-out.

Two users:

- ``qasearch`` (``Settings.redis_username``): the one account of the gateway, workers,
  loaders and cluster admin, with all keys (``~*``), all pub/sub channels (``&*``, for
  the keyspace notifications) and all commands (``+@all``). The server keeps only the
  SHA-256 of its password; ``masterauth`` needs it in clear, so a replica can
  authenticate to its master (as ``masteruser``), also after a failover.
- ``default``: ``on``, with every permission, behind a password nobody holds (the
  digest of a random 256-bit token that is dropped at once, new on every start).

Why ``default`` is ``on``: Redis 7.0 (Debian's 7.0.15) re-checks the ACL of every
command queued in a ``MULTI`` when it runs ``EXEC`` (``NOPERM ACLs rules changed
between the moment the transaction was accumulated and the EXEC call``), also for
the client that replays the append-only file at start-up, and that client is the
``default`` user. With ``default off -@all`` every transaction in the AOF (the
loader writes each document in one, model pushes use them too) was refused on
replay while plain writes replayed, so a restart silently dropped the corpus
(redis/redis#14541, fixed upstream after 7.0). Replay does not check whether the
user is ``on``, only its permissions, but a user that is ``off`` with all
permissions reads as a mistake waiting to happen; ``on`` with a password no one
knows is what the upstream report recommends.

What still holds: a new connection authenticates as ``default`` only if that user
has ``nopass``; it has not, so every command but AUTH/HELLO gets ``NOAUTH``, and
``AUTH <anything>`` gets ``WRONGPASS``.
"""

from __future__ import annotations

import hashlib

from qasearch.core.credentials import DEFAULT_USERNAME, unheld_password_digest
from qasearch.core.settings import Settings


class MissingPassword(ValueError):
    """No password for the qasearch ACL user was given or generated."""


def quote(value: str) -> str:
    """``value`` as a double-quoted redis.conf argument."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def acl_config(settings: Settings) -> str:
    """The ``user``/``masteruser``/``masterauth`` lines of a node's config."""
    if not settings.redis_password:
        raise MissingPassword(
            "no Redis password: set QASEARCH_REDIS_PASSWORD, or let `qasearch cluster up` "
            "generate one"
        )
    user = settings.redis_username or DEFAULT_USERNAME
    digest = hashlib.sha256(settings.redis_password.encode()).hexdigest()
    return (
        f"user default on resetpass #{unheld_password_digest()} ~* &* +@all\n"
        f"user {quote(user)} on #{digest} ~* &* +@all\n"
        f"masteruser {quote(user)}\n"
        f"masterauth {quote(settings.redis_password)}\n"
    )
