"""The node's answer engine: cached answers first, then one batched read of the misses.

Both triggers come here — questions from the gateway and GETs of missing
``bertqa{...}`` keys — and share one :class:`~gears.singleflight.SingleFlight`
table keyed by answer key, so the same answer is never computed twice at once.

A cached value is JSON: answer, score, start, end, model version. A value made by
another model version is a miss (and is overwritten), and a passage's cached
answers are dropped when the passage changes, so an old answer is never served.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

from gears import reader
from gears.asking import is_redirect
from gears.batcher import DynamicBatcher
from gears.singleflight import SingleFlight
from gears.stats import WorkerStats
from gears.tensorize import READER_FIELDS, made_by, passage_tokens, stored_tokens
from qasearch.core import keys
from qasearch.core.settings import Settings


@dataclass(frozen=True)
class ReadItem:
    """One (passage, question) pair to answer, with the passage's stored tensors."""

    tag: str
    pid: str
    question: str  # as the reader reads it and the answer key holds it (keys.question_form)
    text: str
    tokens: reader.PassageTokens

    @property
    def key(self) -> str:
        return keys.answer(self.tag, self.pid, self.question)


def _redirects_only(replies: list) -> list:
    """Replies with redirected ones (a partition leaving the node) read as misses (None);
    any other error is raised."""
    out = []
    for reply in replies:
        if isinstance(reply, Exception):
            if not is_redirect(reply):
                raise reply
            reply = None
        out.append(reply)
    return out


def question_ids(model, settings: Settings, question: str) -> np.ndarray:
    """The reader ids of a question as the workers read it: in the answer key's form
    (``keys.question_form``, which the caller applies), capped at max_question_tokens."""
    return model.question_ids(question, settings.max_question_tokens)


def passage_windows(model, settings: Settings, q_ids: np.ndarray,
                    tokens: reader.PassageTokens) -> list[reader.Window]:
    """The reader windows of (question, passage) at the served sequence length and stride."""
    max_len = min(settings.max_seq_len, model.reader_max_seq_len)
    return reader.build_windows(q_ids, tokens, max_len, settings.doc_stride, model.specials)


def best_answer(model, settings: Settings, windows: Sequence[reader.Window], logits: Sequence,
                text: str, offsets: np.ndarray, handle_impossible: bool = False) -> dict | None:
    """The best span of one passage from its windows' (start, end) logits, with the
    passage's null score; None when there is no span (or, with ``handle_impossible``,
    when the null score beats every span, as the pipeline decides)."""
    best, null = reader.decode_with_null(
        windows, [s for s, _ in logits], [e for _, e in logits], text, offsets,
        top_k=1, max_answer_len=settings.max_answer_len,
        handle_impossible_answer=handle_impossible,
    )
    if not best or not best[0].text:
        return None
    a = best[0]
    return {"answer": a.text, "score": float(a.score), "start": int(a.start), "end": int(a.end),
            "null_score": null, "model": model.version}


class AnswerEngine:
    def __init__(
        self, client: redis.Redis, batcher: DynamicBatcher, settings: Settings, stats: WorkerStats
    ) -> None:
        self.client = client
        self.batcher = batcher
        self.settings = settings
        self.stats = stats
        self.flights = SingleFlight()
        # True while the node is a replica (a standby worker): answers are read from
        # the cache and computed, never written, and nothing is dropped from it
        self.read_only = False

    # --- reading ------------------------------------------------------------
    def read(self, model, items: Sequence[ReadItem]) -> list[dict | None]:
        """Run the reader over ``items`` in one batched submission; None = no span."""
        q_cache: dict[str, np.ndarray] = {}
        windows_per_item = []
        for item in items:
            q_ids = q_cache.get(item.question)
            if q_ids is None:
                q_ids = q_cache[item.question] = question_ids(model, self.settings, item.question)
            windows_per_item.append(passage_windows(model, self.settings, q_ids, item.tokens))
        flat = [w for ws in windows_per_item for w in ws]
        # Similar lengths side by side, so the batches cut from this run pad little.
        order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
        logits = [None] * len(flat)
        if flat:
            for i, out in zip(order, self.batcher.submit([flat[i] for i in order]).result()):
                logits[i] = out
        self.stats.add(model.version, calls=len(items))
        out: list[dict | None] = []
        pos = 0
        for item, windows in zip(items, windows_per_item):
            part = logits[pos : pos + len(windows)]
            pos += len(windows)
            out.append(best_answer(
                model, self.settings, windows, part, item.text, item.tokens.offsets,
                handle_impossible=self.settings.handle_impossible_answer))
        return out

    # --- cache ----------------------------------------------------------------
    def _store(
        self, version: str, items: Sequence[ReadItem], values: Sequence[dict | None]
    ) -> None:
        if self.read_only:
            return
        pipe = self.client.pipeline(transaction=False)
        ttl = self.settings.answer_ttl_s
        for item, value in zip(items, values):
            # "no span" is cached too, so a GET of the key still finds an answer
            payload = value or {"answer": "", "score": 0.0, "start": 0, "end": 0,
                                "model": version}
            pipe.set(item.key, json.dumps(payload), ex=ttl)
            pipe.sadd(keys.cached_answers(item.tag, item.pid), item.key)
            pipe.expire(keys.cached_answers(item.tag, item.pid), ttl)
            pipe.sadd(keys.cached_passages(item.tag), item.pid)
        # a partition moving to another node refuses new keys (-ASK): caching is optional
        _redirects_only(pipe.execute(raise_on_error=False))

    @staticmethod
    def _current_value(raw: bytes | None, model) -> tuple[bool, dict | None]:
        """(found, answer) of a cached value; values of another model version are not found."""
        value = json.loads(raw) if raw else None
        if value is None or value.get("model") != model.version:
            return False, None
        return True, (value if value["answer"] else None)

    def answers(
        self, model, items: Sequence[ReadItem], use_cache: bool = True
    ) -> list[dict | None]:
        """Answers for ``items``: cached where current, else read once (single-flight)."""
        if not items:
            return []
        if not use_cache:
            return self.read(model, items)
        pipe = self.client.pipeline(transaction=False)
        for item in items:
            pipe.get(item.key)  # one GET each: the keys span partitions, so no MGET
        cached = _redirects_only(pipe.execute(raise_on_error=False))
        results: list[dict | None] = [None] * len(items)
        missing: dict[str, list[int]] = {}
        for i, (item, raw) in enumerate(zip(items, cached)):
            found, value = self._current_value(raw, model)
            if found:
                results[i] = value
            else:
                missing.setdefault(item.key, []).append(i)
        hits = len(items) - sum(len(v) for v in missing.values())
        self.stats.add(model.version, cache_hits=hits, cache_misses=len(missing))
        mine, theirs = self.flights.claim(missing)
        if mine:
            # A flight that ended between our GET and our claim has stored its answer
            # before releasing the key: look again, so it is not computed a second time.
            pipe = self.client.pipeline(transaction=False)
            for key in mine:
                pipe.get(key)
            for key, raw in zip(list(mine), _redirects_only(pipe.execute(raise_on_error=False))):
                found, value = self._current_value(raw, model)
                if found:
                    mine.remove(key)
                    self.flights.resolve(key, value)
                    for i in missing[key]:
                        results[i] = value
        if mine:
            todo = [items[missing[k][0]] for k in mine]
            try:
                values = self.read(model, todo)
                self._store(model.version, todo, values)
            except BaseException as exc:
                for key in mine:
                    self.flights.fail(key, exc)
                raise
            for key, value in zip(mine, values):
                self.flights.resolve(key, value)
                for i in missing[key]:
                    results[i] = value
        for key, flight in theirs.items():
            value = flight.result(timeout=self.settings.deadline_ms / 1000.0)
            for i in missing[key]:
                results[i] = value
        return results

    def drop_passage_answers(self, tag: str, pids: Sequence[str]) -> None:
        """Forget every cached answer of ``pids`` (their text changed or they are gone)."""
        if not pids or self.read_only:
            return
        pipe = self.client.pipeline(transaction=False)
        for pid in pids:
            pipe.smembers(keys.cached_answers(tag, pid))
        members = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for pid, answer_keys in zip(pids, members):
            if answer_keys:
                pipe.unlink(*answer_keys)
            pipe.unlink(keys.cached_answers(tag, pid))
            pipe.srem(keys.cached_passages(tag), pid)
        pipe.execute()

    def drop_partition_answers(self, tag: str) -> None:
        if self.read_only:
            return
        pids = [m.decode() for m in self.client.smembers(keys.cached_passages(tag))]
        self.drop_passage_answers(tag, pids)

    # --- key-miss trigger -----------------------------------------------------
    def load_item(self, model, tag: str, pid: str, question: str) -> ReadItem | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(keys.passage(tag, pid), "text")
        pipe.hmget(keys.tensors(tag, pid), [*READER_FIELDS, "reader_tok"])
        text, (*fields, tok) = pipe.execute()
        if text is None or fields[0] is None:
            return None
        if tok == made_by(model):
            tokens = stored_tokens(*fields)
        else:  # stored by another tokenizer or layout (a swap in progress): tokenise now
            tokens = passage_tokens(model, text.decode())
        return ReadItem(tag, pid, question, text.decode(), tokens)

    def on_keymiss(self, model, key: str, owned_tags: set[str]) -> bool:
        """Compute and store the answer a missed GET asked for; False if not ours to answer."""
        parsed = keys.parse_answer(key)
        if parsed is None or parsed[0] not in owned_tags or self.flights.in_flight(key):
            return False
        if keys.question_form(parsed[2]) != parsed[2]:
            return False  # not a key we would ever write: nothing to compute
        if self.client.exists(key):
            return False
        item = self.load_item(model, *parsed)
        if item is None:
            return False
        self.answers(model, [item])
        self.stats.add(model.version, keymiss_triggers=1)
        return True
