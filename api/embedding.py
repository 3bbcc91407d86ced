"""The question embedder of the gateway, loaded from the model package in Redis.

The gateway embeds each question once and sends the vector to every shard. It
loads the package that the masters serve (Redis is the single source of truth for
models) and follows the version the first master's worker serves (its heartbeat;
the node's current version while no worker runs), checking at most every few
seconds: a package the workers refuse is never reported as served.

A request never waits for a model to load, except the very first one: a new
version with the same embedder only changes what the gateway reports (version,
trained), and a new embedder is loaded on a thread of its own while the one in
hand keeps serving (a worker that has already swapped embeds the question itself,
see gears.serving).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from qasearch.core import keys, modelpkg
from qasearch.core.models import LoadedModel
from qasearch.core.settings import Settings
from qasearch.core.topology import Master, node_client

log = logging.getLogger("qasearch.gateway")

VERSION_CHECK_S = 2.0
# what a broken or incompatible package raises; a Redis error is tried again later
PACKAGE_ERRORS = (modelpkg.ModelPackageError, RuntimeError, ValueError, KeyError)


def served_version(client: redis.Redis, ntag: str) -> str | None:
    """The version this node's worker serves, else the node's current version."""
    served = client.hget(keys.worker_state(ntag), "model")
    return served.decode() if served else modelpkg.current_version(client, ntag)


def _load(client: redis.Redis, master: Master, version: str) -> LoadedModel:
    """A version read from the node (every hash verified) and loaded on one thread."""
    return LoadedModel.from_package(modelpkg.load(client, master.tag, version), threads=1)


class NoModel(RuntimeError):
    """No model package has been pushed to the cluster yet."""


class QuestionEmbedder:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model: LoadedModel | None = None
        self._checked = 0.0
        self._refused = ""
        self._loading = ""  # the version a background thread is loading
        self._lock = threading.Lock()

    def _client(self, master: Master, socket_timeout: float | None) -> redis.Redis:
        return node_client(master.host, master.port, self.settings, socket_connect_timeout=1,
                           socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0))

    def current(self, master: Master) -> LoadedModel:
        """The model the cluster serves now, or the one in hand while the new one loads."""
        if self.model is not None and time.monotonic() - self._checked < VERSION_CHECK_S:
            return self.model
        # one request checks; the others go on with the model in hand meanwhile
        if not self._lock.acquire(blocking=self.model is None):
            return self.model
        try:
            client = self._client(master, socket_timeout=2)
            try:
                version = served_version(client, master.tag)
                if version is None:
                    raise NoModel("no model has been pushed; run `qasearch model push`")
                if self.model is None:
                    self._load_now(client, master, version)
                elif self.model.version != version and version not in (self._refused,
                                                                        self._loading):
                    self._follow(client, master, version)
            finally:
                client.close()
            self._checked = time.monotonic()
            return self.model
        finally:
            self._lock.release()

    def _load_now(self, client: redis.Redis, master: Master, version: str) -> None:
        """The first model: nothing to serve with until it is loaded."""
        try:
            self.model = _load(client, master, version)
        except PACKAGE_ERRORS:
            self._refused = version
            raise NoModel(f"model {version} cannot be loaded") from None

    def _follow(self, client: redis.Redis, master: Master, version: str) -> None:
        """Take up a new current version without making any request wait for it."""
        try:
            manifest = modelpkg.read_manifest(client, master.tag, version)
            same_embedder = manifest["ids"]["embedder"] == self.model.embedder_id
        except PACKAGE_ERRORS:
            self._refused = version  # like the workers: a broken package never replaces
            return
        if same_embedder:  # the gateway only embeds: nothing to load
            self.model = dataclasses.replace(
                self.model, version=version, trained=bool(manifest["trained"]),
                manifest=manifest)
            return
        self._loading = version
        threading.Thread(target=self._load_in_background, args=(master, version),
                         name=f"load-{version}", daemon=True).start()

    def _load_in_background(self, master: Master, version: str) -> None:
        client = self._client(master, socket_timeout=120)  # large values: generous
        try:
            loaded = _load(client, master, version)
            if served_version(client, master.tag) == version:  # not rolled back meanwhile
                self.model = loaded
                log.info("gateway embedder: model %s in service", version)
        except PACKAGE_ERRORS as exc:
            self._refused = version
            log.error("model %s refused by the gateway, still embedding with %s: %s",
                      version, self.model.version if self.model else "nothing", exc)
        except redis.RedisError as exc:  # the next version check tries again
            log.warning("loading model %s: %s", version, exc)
        finally:
            client.close()
            self._loading = ""

    def preload(self, fanout) -> None:
        """Load the current model now, so the first request does not pay for it."""
        try:
            self.current(fanout.masters()[0])
        except (NoModel, OSError, IndexError, redis.RedisError):
            pass  # nothing pushed or cluster down yet: the first request will say so
