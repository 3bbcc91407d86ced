"""Putting a node's new model package in service while the old one keeps serving.

Housekeeping asks every second (:meth:`ModelSwap.refresh`); a version pushed since
is loaded, and a package that cannot be loaded is refused once and never retried,
so the node goes on with the model it has. A model with another tokenizer or
embedder has every index of the node built anew first and enters service
together with them, so no request pairs a model with indexes made by another.
"""

from __future__ import annotations

import logging

from gears import node_data
from gears.engine import AnswerEngine
from gears.indexing import Indexer
from gears.shard_state import ShardState
from qasearch.core import modelpkg
from qasearch.core.models import LoadedModel

log = logging.getLogger("qasearch.worker")


class ModelSwap:
    def __init__(self, state: ShardState, engine: AnswerEngine, indexer: Indexer) -> None:
        self.state = state
        self.engine = engine
        self.indexer = indexer
        self.refused_version = ""  # a package that failed to load, never tried again (heartbeat)
        self.loading_version = ""  # a model being loaded, its indexes built (heartbeat)

    def refresh(self) -> bool:
        """Load the node's current model package if it is new; True when one is loaded."""
        s = self.state
        tag = s.ownership.node_tag
        if tag is None:
            return s.model is not None
        version = modelpkg.current_version(s.client, tag)
        if version is None or (s.model is not None and s.model.version == version):
            return s.model is not None
        if version == self.refused_version:
            return s.model is not None
        log.info("loading model %s from %s", version, s.node)
        self.loading_version = version
        try:
            return self._swap_in(tag, version)
        finally:
            self.loading_version = ""

    def _swap_in(self, tag: str, version: str) -> bool:
        s = self.state
        try:
            package = modelpkg.load(s.client, tag, version)
            loaded = LoadedModel.from_package(package, threads=s.settings.torch_threads)
        except (modelpkg.ModelPackageError, RuntimeError, ValueError, KeyError) as exc:
            # A corrupt or incompatible package must not take the node down: keep
            # serving the version already loaded, and do not retry this one.
            self.refused_version = version
            log.error("model %s refused, still serving %s: %s", version,
                      s.model.version if s.model else "nothing", exc)
            return s.model is not None
        previous = s.model
        if previous is not None and (
            previous.reader_tokenizer_id != loaded.reader_tokenizer_id
            or previous.embedder_id != loaded.embedder_id
        ):
            # Another tokenizer or embedder: build every index with the new model first
            # (the old one keeps serving meanwhile), then swap model and indexes in one
            # step, so no request ever sees an empty or half-built index. The new tensors
            # are stored after the swap; a request that meets tensors of the other
            # tokenizer meanwhile tokenises that passage itself (gears.answering).
            built = {part: node_data.build_index(s.client, part, loaded)
                     for part in list(s.indexes)}
            with s.lock:
                s.model = loaded
                s.indexes = {part: index for part, (index, _) in built.items()}
            for part, (_, staged) in built.items():
                self.indexer.write_tensors(part, staged)
        else:
            with s.lock:
                s.model = loaded
        if previous is not None:
            for tag in s.ownership.tags():
                self.engine.drop_partition_answers(tag)  # made by the previous model
        log.info("model %s in service (trained=%s)", loaded.version, loaded.trained)
        return True
