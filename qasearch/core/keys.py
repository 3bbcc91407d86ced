"""The key schema: every Redis key qasearch reads or writes is spelled here, and only here.

Partition keys carry the partition's hash tag (``{p05}``), node-local keys carry the
node's tag (``{n1}``), see :mod:`qasearch.core.partitions`. Layout::

    qa:corpus{qa}                  hash   partitions, version, passages (cluster-wide)
    qa:passage{p05}:<pid>          hash   text, title, doc_id, source, chunk, char_start, section
    qa:index{p05}                  set    passage ids of the partition
    qa:doc{p05}:<doc>              hash   passages (count of chunks), source
    qa:tensors{p05}:<pid>          hash   ids, offsets, emb (codec), reader_tok, embedder
    qa:ingest{p05}                 stream op=set|del, pid   (written with the passage)
    qa:requests{n1}                stream questions for the node's worker
    qa:reply{n1}:<request id>      list   the worker's reply to one request
    qa:model{n1}:current           string version id of the model package in service
    qa:model{n1}:versions          list   version ids, most recently served first
    qa:model{n1}:<version>:manifest  hash  manifest of one model package
    qa:model{n1}:<version>:<part>:<i> string chunk ``i`` of blob ``part``
    qa:worker{n1}                  hash   the node worker's heartbeat and state
    qa:bench{n1}                   string a small key, baseline for redis-benchmark
    qa:stats{n1}:<version>         hash   reader stats of one model version on the node
    bertqa{p05}_<pid>_<question>   string cached answer (JSON) of a passage and a question as asked
    qa:cached{p05}:<pid>           set    answer keys cached for a passage (to drop them)
    qa:cached{p05}                 set    passage ids that have cached answers
    qa:response{<h>}:<digest>      string a whole /qasearch response (gateway cache)

Pub/sub channels (not keys: a replica accepts them, see gears/standby.py)::

    qa:standby:<node id>           requests for the standby worker beside that (replica) node
    qa:standby-reply:<request id>  that standby's reply to one request

A passage id (pid) is ``<escaped doc id>:<chunk number>``; the escaping leaves only
ASCII letters, digits, ``-``, ``.`` and ``~`` plus ``%XX`` escapes, so a pid never
contains ``_``, ``:`` (besides the chunk separator), braces or spaces.
"""

from __future__ import annotations

import hashlib

PREFIX = "qa"
ANSWER_PREFIX = "bertqa"
CORPUS_META = PREFIX + ":corpus{qa}"
# Field of CORPUS_META: passages the loaders recorded as written (new minus removed),
# a plain HINCRBY after each partition's EXEC, so it replays even where a transaction
# would not, and ``qasearch cluster status`` can set the index against it.
CORPUS_RECORDED = "passages"

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.~")


def escape_id(raw: str) -> str:
    """Percent-escape every character of ``raw`` outside ``[A-Za-z0-9.~-]``."""
    out = []
    for ch in raw:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def unescape_id(escaped: str) -> str:
    """Inverse of :func:`escape_id`."""
    data = bytearray()
    i = 0
    while i < len(escaped):
        if escaped[i] == "%":
            data.append(int(escaped[i + 1 : i + 3], 16))
            i += 3
        else:
            data.extend(escaped[i].encode("ascii"))
            i += 1
    return data.decode("utf-8")


def passage_id(doc_id: str, chunk: int) -> str:
    return f"{escape_id(doc_id)}:{chunk}"


def doc_of_passage(pid: str) -> str:
    """The (unescaped) document id of a passage id."""
    return unescape_id(pid.rsplit(":", 1)[0])


def passage(tag: str, pid: str) -> str:
    return f"{PREFIX}:passage{{{tag}}}:{pid}"


def passage_index(tag: str) -> str:
    return f"{PREFIX}:index{{{tag}}}"


def document(tag: str, doc_id: str) -> str:
    return f"{PREFIX}:doc{{{tag}}}:{escape_id(doc_id)}"


def tensors(tag: str, pid: str) -> str:
    return f"{PREFIX}:tensors{{{tag}}}:{pid}"


def ingest_stream(tag: str) -> str:
    return f"{PREFIX}:ingest{{{tag}}}"


def requests_stream(ntag: str) -> str:
    return f"{PREFIX}:requests{{{ntag}}}"


def reply(ntag: str, request_id: str) -> str:
    return f"{PREFIX}:reply{{{ntag}}}:{request_id}"


def standby_channel(node_id: str) -> str:
    """Named by the node, not the shard: a cluster broadcasts ``PUBLISH`` to every node,
    and only the worker beside this one node may take the request."""
    return f"{PREFIX}:standby:{node_id}"


def standby_reply(request_id: str) -> str:
    return f"{PREFIX}:standby-reply:{request_id}"


def model_current(ntag: str) -> str:
    return f"{PREFIX}:model{{{ntag}}}:current"


def model_versions(ntag: str) -> str:
    return f"{PREFIX}:model{{{ntag}}}:versions"


def model_manifest(ntag: str, version: str) -> str:
    return f"{PREFIX}:model{{{ntag}}}:{version}:manifest"


def model_chunk(ntag: str, version: str, part: str, index: int) -> str:
    return f"{PREFIX}:model{{{ntag}}}:{version}:{part}:{index}"


def worker_state(ntag: str) -> str:
    return f"{PREFIX}:worker{{{ntag}}}"


# Group names are not keys, but they are part of the schema all the same.
WORKER_GROUP = "workers"


def bench_key(ntag: str) -> str:
    """A small plain key on the node, the baseline of the answer-key benchmark."""
    return f"{PREFIX}:bench{{{ntag}}}"


def stats(ntag: str, version: str) -> str:
    return f"{PREFIX}:stats{{{ntag}}}:{version}"


# --- cached answers ----------------------------------------------------------
#
# An answer key is ``bertqa{<partition tag>}_<pid>_<question>``. A pid never
# contains "_" (see escape_id), so the first "_" after the tag ends the prefix, the
# second ends the pid, and everything after it is the question, whatever
# characters it holds.
#
# The question is held as asked (question_form: only leading and trailing
# whitespace go, as the gateway strips them), not case-folded, re-spaced or
# Unicode-normalised: the key-miss trigger has nothing but the key to read, so
# the key's question is the text the reader tokenises, and each of those foldings
# changes the tokens of some reader (case for cased WordPiece and SentencePiece,
# runs of spaces for byte-level BPE, NFC for tokenizers without that normaliser).
# Equal keys therefore always mean equal reader input; two spellings of a question
# are two cache entries. docs/architecture.md says more.


def question_form(question: str) -> str:
    """The question as the reader reads it and its answer key holds it: as asked,
    without leading and trailing whitespace."""
    return question.strip()


def answer(tag: str, pid: str, question: str) -> str:
    """The cache key of ``question`` (in :func:`question_form`) on passage ``pid``."""
    return f"{ANSWER_PREFIX}{{{tag}}}_{pid}_{question_form(question)}"


def parse_answer(key: str | bytes) -> tuple[str, str, str] | None:
    """(partition tag, pid, question) of an answer key, or None if it is not one."""
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not key.startswith(ANSWER_PREFIX + "{"):
        return None
    close = key.find("}_", len(ANSWER_PREFIX) + 1)
    if close < 0:
        return None
    tag = key[len(ANSWER_PREFIX) + 1 : close]
    rest = key[close + 2 :]
    pid, sep, question = rest.partition("_")
    if not (tag and pid and sep and question) or ":" not in pid:
        return None
    return tag, pid, question


def cached_answers(tag: str, pid: str) -> str:
    return f"{PREFIX}:cached{{{tag}}}:{pid}"


def cached_passages(tag: str) -> str:
    return f"{PREFIX}:cached{{{tag}}}"


def response(digest_input: str) -> str:
    """Gateway response-cache key; the digest's head is the hash tag, spreading keys over nodes."""
    digest = hashlib.sha256(digest_input.encode("utf-8")).hexdigest()
    return f"{PREFIX}:response{{{digest[:6]}}}:{digest}"
