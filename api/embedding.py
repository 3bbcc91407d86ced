"""The question embedder of the gateway, loaded from the model package in Redis.

The gateway embeds each question once and sends the vector to every shard. It
loads the package that the masters serve (Redis is the single source of truth for
models) and follows the current version, checking at most every few seconds.
"""

from __future__ import annotations

import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from qasearch import modelpkg
from qasearch.models import LoadedModel
from qasearch.settings import Settings
from qasearch.topology import Master, node_client

VERSION_CHECK_S = 2.0


class NoModel(RuntimeError):
    """No model package has been pushed to the cluster yet."""


class QuestionEmbedder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model: LoadedModel | None = None
        self._checked = 0.0
        self._refused = ""
        self._lock = threading.Lock()

    def current(self, master: Master) -> LoadedModel:
        """The model the cluster serves now (re-checked at most every few seconds)."""
        if self.model is not None and time.monotonic() - self._checked < VERSION_CHECK_S:
            return self.model
        with self._lock:
            client = node_client(master.host, master.port, self.settings,
                                 socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
            try:
                version = modelpkg.current_version(client, master.tag)
                if version is None:
                    raise NoModel("no model has been pushed; run `qasearch model push`")
                stale = self.model is None or self.model.version != version
                if stale and version != self._refused:
                    try:
                        package = modelpkg.load(client, master.tag, version)
                        self.model = LoadedModel.from_package(package, threads=1)
                    except (modelpkg.ModelPackageError, RuntimeError, ValueError, KeyError):
                        # like the workers: a broken package never replaces a working one
                        self._refused = version
                        if self.model is None:
                            raise NoModel(f"model {version} cannot be loaded") from None
            finally:
                client.close()
            self._checked = time.monotonic()
            return self.model

    def preload(self, fanout) -> None:
        """Load the current model now, so the first request does not pay for it."""
        try:
            self.current(fanout.masters()[0])
        except (NoModel, OSError, IndexError, redis.RedisError):
            pass  # nothing pushed or cluster down yet: the first request will say so
