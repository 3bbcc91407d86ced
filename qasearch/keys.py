"""The key schema: every Redis key qasearch reads or writes is spelled here, and only here.

Partition keys carry the partition's hash tag (``{p05}``), node-local keys carry the
node's tag (``{n1}``), see :mod:`qasearch.partitions`. Layout::

    qa:corpus{qa}                  hash   partitions, version          (cluster-wide)
    qa:passage{p05}:<pid>          hash   text, title, doc_id, source, chunk, char_start
    qa:index{p05}                  set    passage ids of the partition
    qa:doc{p05}:<doc>              hash   passages (count of chunks), source
    qa:tensors{p05}:<pid>          hash   ids, offsets, emb (codec), reader_tok, embedder
    qa:ingest{p05}                 stream op=set|del, pid   (written with the passage)
    qa:requests{n1}                stream questions for the node's worker
    qa:reply{n1}:<request id>      list   the worker's reply to one request
    qa:model{n1}:current           string version id of the model package in service
    qa:model{n1}:versions          list   version ids, newest first
    qa:model{n1}:<version>:manifest  hash  manifest of one model package
    qa:model{n1}:<version>:<part>:<i> string chunk ``i`` of blob ``part``
    qa:worker{n1}                  hash   the node worker's heartbeat and state

A passage id (pid) is ``<escaped doc id>:<chunk number>``; the escaping leaves only
ASCII letters, digits, ``-``, ``.`` and ``~`` plus ``%XX`` escapes, so a pid never
contains ``_``, ``:`` (besides the chunk separator), braces or spaces.
"""

from __future__ import annotations

PREFIX = "qa"
CORPUS_META = PREFIX + ":corpus{qa}"

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
