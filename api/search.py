"""One question, two phases: a global top-K of candidates, then reading only those.

Phase 1 asks every master for its best candidates (gears.answering.find_candidates);
a partition no reply covered is asked of its owner again, within the deadline (a
slot may have switched after the topology was read). The candidates of the
replies that count for their partitions (api.coverage) are ranked by one fused
retrieval score (api.fusion) and the best ``top_k`` are kept: how many passages
are read no longer depends on how many partitions or masters there are.

Phase 2 sends each chosen passage to the master whose reply named it, all masters
in parallel, under the request's one deadline; each reads through its answer
cache. A passage whose partition moved in between is asked of its new owner once.
A master that fails in phase 2 is listed as failed with its partitions, which are
then missing: the response is partial, never late. A shard answered by the
standby beside its replica (api.fanout) is listed in ``standby``, and what it
read is marked ``replica``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from api import coverage, fusion
from api.fanout import Fanout, ShardReply
from qasearch.core.partitions import in_ranges, owned_partitions, partition_tag, slot_of_tag
from qasearch.core.settings import Settings

# Missing partitions are asked for again (no pause, then 0.5 s, 1 s, ...): a partition
# that just switched nodes is served once the new owner's worker has seen the switch.
COVERAGE_ATTEMPTS = 4
COVERAGE_PAUSE_S = 0.5


@dataclass
class Outcome:
    """What the two phases found: answers best first, every passage read, the fused
    candidates, and which shards failed (with the partitions that are missing)."""

    answers: list[dict]
    read: list[dict]
    candidates: list[dict]
    failed: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    answered: int = 0  # shards that answered phase 1
    asked: int = 0
    versions: set[str] = field(default_factory=set)
    standby: list[dict] = field(default_factory=list)  # shards a replica answered for


class TwoPhaseSearch:
    def __init__(self, settings: Settings, fanout: Fanout) -> None:
        self.settings = settings
        self.fanout = fanout

    def run(self, question: str, vector: np.ndarray, embedder_id: str, top_k: int,
            use_cache: bool, partitions: int, deadline: float) -> Outcome:
        """Both phases for one question; ``deadline`` is a ``time.monotonic()`` instant."""
        depth = max(self.settings.retrieve_depth, top_k)
        # Phase 1 may spend only a share of what is left: a shard that cannot answer
        # (paused, overloaded, just killed) must not leave phase 2 without time.
        now = time.monotonic()
        retrieve_by = now + max(0.0, deadline - now) * self.settings.retrieve_share
        replies = self._retrieve(question, vector, embedder_id, depth, partitions, retrieve_by)
        assigned, missing = coverage.assign(replies, partitions)
        candidates = self._rank(replies, assigned)
        chosen = candidates[:top_k]
        read, failed_nodes, read_replies = self._read(question, chosen, use_cache, deadline)
        replies_failed = [r for r in replies if not r.ok]
        failed = [_failed_entry(r, partitions, "retrieve") for r in replies_failed]
        for reply, reason in failed_nodes:
            failed.append({"node": reply.node, "reason": reason, "phase": "read",
                           "partitions": coverage.served(reply, partitions)})
        lost = {t for f in failed if f.get("phase") == "read" for t in f["partitions"]}
        missing = sorted(set(missing) | lost)
        versions = {r.payload["model"]["version"] for r in replies
                    if r.ok and r.payload.get("model")}
        standby = [{"node": r.node, "replica": r.via, "phase": phase}
                   for phase, group in (("retrieve", replies), ("read", read_replies))
                   for r in group if r.ok and r.standby]
        return Outcome(
            standby=standby,
            answers=self._answers(read), read=sorted(read, key=lambda p: -p["retrieval"]),
            candidates=candidates, failed=failed, missing=missing,
            # a shard answered when it answered every phase it was asked
            answered=sum(r.ok for r in replies) - len(failed_nodes), asked=len(replies),
            versions=versions,
        )

    # --- phase 1 ------------------------------------------------------------
    def _retrieve(self, question: str, vector: np.ndarray, embedder_id: str, depth: int,
                  partitions: int, deadline: float) -> list[ShardReply]:
        fanout = self.fanout
        replies = fanout.ask(question, vector, depth, _left_ms(deadline), embedder_id,
                             targets=coverage.targets(fanout.masters(), partitions),
                             partitions=partitions)
        for attempt in range(COVERAGE_ATTEMPTS):
            _, missing = coverage.assign(replies, partitions)
            left_ms = _left_ms(deadline)
            if not missing or left_ms <= COVERAGE_PAUSE_S * 1000.0 * attempt + 1:
                break
            # A partition switched nodes after the topology was read: ask its owner now;
            # if the owner has not taken it up yet (its worker sees a switch within a
            # second), ask again a moment later, all within the request's deadline.
            time.sleep(COVERAGE_PAUSE_S * attempt)
            fanout.refresh()
            failed = {r.node for r in replies if not r.ok}  # asked, could not answer
            again = [m for m in coverage.owners_of(fanout.masters(), missing)
                     if m.address not in failed]
            if not again:
                break
            replies = coverage.combine(replies, fanout.ask(
                question, vector, depth, _left_ms(deadline), embedder_id, targets=again,
                partitions=partitions))
        return replies

    def _rank(self, replies: list[ShardReply], assigned: dict[str, ShardReply]) -> list[dict]:
        """Every counted candidate with its retrieval score and the reply that named it,
        best first."""
        return fusion.rank([dict(c, reply=r) for r in replies if r.ok
                            for c in r.payload.get("candidates", [])
                            if assigned.get(c["partition"]) is r], self.settings)

    # --- phase 2 ------------------------------------------------------------
    def _read(self, question: str, chosen: list[dict], use_cache: bool,
              deadline: float) -> tuple[list[dict], list[tuple[ShardReply, str]], list[ShardReply]]:
        """Every chosen passage read, the phase-1 replies whose node failed to read, and
        the phase-2 replies."""
        by_key = {(c["partition"], c["pid"]): c for c in chosen}
        groups: dict[str, tuple[ShardReply, list[dict]]] = {}
        for c in chosen:
            groups.setdefault(c["reply"].node, (c["reply"], []))[1].append(
                {"partition": c["partition"], "pid": c["pid"]})
        read: list[dict] = []
        failed: list[tuple[ShardReply, str]] = []
        moved: list[dict] = []
        replies = self.fanout.read(
            question, [(first.master, wanted) for first, wanted in groups.values()],
            _left_ms(deadline), use_cache)
        for reply in replies:
            first, wanted = groups[reply.node]
            if not reply.ok:
                failed.append((first, reply.reason))
                continue
            read.extend(dict(p, replica=reply.standby) for p in reply.payload.get("read", []))
            gone = set(reply.payload.get("lost", []))
            moved.extend(w for w in wanted if w["partition"] in gone)
        if moved and _left_ms(deadline) > 1:
            read.extend(self._read_moved(question, moved, use_cache, deadline))
        for passage in read:
            cand = by_key[(passage["partition"], passage["pid"])]
            passage.update(similarity=cand["dense"], lexical=cand["lexical"],
                           retrieval=cand["retrieval"])
        return read, failed, replies

    def _read_moved(self, question: str, moved: list[dict], use_cache: bool,
                    deadline: float) -> list[dict]:
        """Passages whose partition left its node between the phases, read by the owner
        the topology names now (once: what is still lost is not read)."""
        self.fanout.refresh()
        per_master = []
        for master in self.fanout.masters():
            mine = [w for w in moved if in_ranges(slot_of_tag(w["partition"]), master.ranges)]
            if mine:
                per_master.append((master, mine))
        read = []
        for reply in self.fanout.read(question, per_master, _left_ms(deadline), use_cache):
            if reply.ok:
                read.extend(dict(p, replica=reply.standby) for p in reply.payload.get("read", []))
        return read

    def _answers(self, read: list[dict]) -> list[dict]:
        """Each passage's span, scored by BERTserini's interpolation, best first."""
        weight = self.settings.answer_weight
        answers = []
        for p in read:
            if not p.get("answer"):
                continue
            answers.append({
                "answer": p["answer"],
                "score": fusion.answer_score(p["retrieval"], p["score"], weight),
                "reader_score": p["score"], "retrieval_score": p["retrieval"],
                "similarity": p["similarity"], "lexical": p["lexical"],
                "start": p["start"], "end": p["end"], "null_score": p.get("null_score"),
                "sentence": p["sentence"], "sentencekey": p["sentencekey"],
                "title": p["title"], "section": p["section"], "doc_id": p["doc_id"],
                "partition": p["partition"], "answerkey": p["answerkey"],
                "replica": p.get("replica", False),  # read by a standby from a replica
            })
        answers.sort(key=lambda a: a["score"], reverse=True)
        return answers


def _failed_entry(reply: ShardReply, partitions: int, phase: str) -> dict:
    return {"node": reply.node, "reason": reply.reason, "phase": phase, "partitions": [
        partition_tag(p) for p in owned_partitions(reply.master.ranges, partitions)]}


def _left_ms(deadline: float) -> int:
    return max(0, int((deadline - time.monotonic()) * 1000.0))
