"""The model package format in Redis: the one place that reads and writes it.

A package is a manifest plus two blobs, ``reader`` and ``embedder`` (TorchScript
archives). The manifest (JSON) holds::

    format, version, name, source, trained, created,
    reader:   {format: torchscript, quantized: null|int8, config (HF config dict),
               max_seq_len, inputs, special_ids: {cls, sep, pad}}
    embedder: {format: torchscript, pooling: mean, normalize: true, dim, max_seq_len, source}
    reader_tokenizer, embedder_tokenizer   (tokenizer.json text)
    sizes, sha256 (per blob and tokenizer), digests (per blob: what it computes),
    ids: {reader_tokenizer, embedder}
    chunks, chunk_size                     (set when stored)

The version id is the first 16 hex digits of a sha256 over the content (digests of
the weights each blob was traced from, tokenizer hashes, reader and embedder
sections, trained flag), so pushing the same model twice yields the same version;
``sha256`` (of the exact bytes) is what a load verifies. On a node, under the node tag ``{n1}``:
blobs are cut into chunks (a Redis string holds at most 512 MB) at
``keys.model_chunk``, then the manifest goes to ``keys.model_manifest`` (field
``json``), then, in one MULTI, the version is moved to the head of
``keys.model_versions`` and ``keys.model_current`` is set. So the current
pointer only ever names a complete package.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from qasearch.core import keys
from qasearch.core.settings import Settings
from qasearch.core.topology import Master, masters, node_client

FORMAT = 1
PARTS = ("reader", "embedder")
TOKENIZERS = ("reader_tokenizer", "embedder_tokenizer")
DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
MANIFEST_FIELD = "json"

Progress = Callable[[int], None]


class ModelPackageError(Exception):
    """A model package is missing, incomplete or corrupt."""


@dataclass(frozen=True)
class ModelPackage:
    manifest: dict
    blobs: dict[str, bytes] = field(repr=False)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def trained(self) -> bool:
        return bool(self.manifest["trained"])

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.blobs.values())


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def make_package(
    *,
    name: str,
    source: str,
    trained: bool,
    reader: dict,
    embedder: dict,
    reader_tokenizer: str,
    embedder_tokenizer: str,
    blobs: dict[str, bytes],
    digests: dict[str, str] | None = None,
) -> ModelPackage:
    """Assemble a package: hashes, sizes, the derived ids and the content version.

    ``digests`` identify what each blob computes (a hash of the weights and
    settings it was traced from). TorchScript archives carry Python stack traces
    and process-wide name counters, so the same model traced twice gives other
    bytes; the version is built from the digests when given (else the blob hashes).
    """
    if set(blobs) != set(PARTS):
        raise ValueError(f"a package needs exactly the blobs {PARTS}, got {sorted(blobs)}")
    sha = {part: _sha(blobs[part]) for part in PARTS}
    sha["reader_tokenizer"] = _sha(reader_tokenizer)
    sha["embedder_tokenizer"] = _sha(embedder_tokenizer)
    digests = dict(digests) if digests else {part: sha[part] for part in PARTS}
    content = {"format": FORMAT, "trained": bool(trained), "reader": reader,
               "embedder": embedder, "digests": digests,
               "tokenizers": [sha["reader_tokenizer"], sha["embedder_tokenizer"]]}
    version = _sha(_canonical(content))[:16]
    ids = {
        # Passage tensors depend only on these: a new model with the same
        # tokenizer (or embedder) keeps the stored ids/offsets (or vectors).
        "reader_tokenizer": sha["reader_tokenizer"][:16],
        "embedder": _sha(_canonical({"embedder": embedder, "digest": digests["embedder"],
                                     "tokenizer": sha["embedder_tokenizer"]}))[:16],
    }
    manifest = {
        "format": FORMAT,
        "version": version,
        "name": name,
        "source": source,
        "trained": bool(trained),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reader": reader,
        "embedder": embedder,
        "reader_tokenizer": reader_tokenizer,
        "embedder_tokenizer": embedder_tokenizer,
        "sizes": {part: len(blobs[part]) for part in PARTS},
        "sha256": sha,
        "digests": digests,
        "ids": ids,
    }
    return ModelPackage(manifest, dict(blobs))


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def current_version(client: redis.Redis, ntag: str) -> str | None:
    """The version in service on this node, or None before the first push."""
    return _text(client.get(keys.model_current(ntag)))


def list_versions(client: redis.Redis, ntag: str) -> list[str]:
    """Stored versions on this node, most recently put in service first."""
    return [_text(v) for v in client.lrange(keys.model_versions(ntag), 0, -1)]


def read_manifest(client: redis.Redis, ntag: str, version: str) -> dict:
    """The manifest of ``version`` on this node (no blobs)."""
    raw = client.hget(keys.model_manifest(ntag, version), MANIFEST_FIELD)
    if raw is None:
        raise ModelPackageError(f"model {version} has no manifest under {{{ntag}}}")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ModelPackageError(f"model {version}: unreadable manifest: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != version:
        raise ModelPackageError(f"model {version}: manifest of another format or version")
    return manifest


def _chunk_keys(ntag: str, version: str, part: str, count: int) -> list[str]:
    return [keys.model_chunk(ntag, version, part, i) for i in range(count)]


def store(
    client: redis.Redis,
    ntag: str,
    package: ModelPackage,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
) -> None:
    """Write ``package`` to this node and make it current (see module doc for the order).

    ``progress`` is called with the byte count of every chunk written.
    """
    if not 0 < chunk_size <= 512 * 1024 * 1024:
        raise ValueError("chunk_size must be in (0, 512 MiB]")
    version = package.version
    manifest = dict(package.manifest)
    manifest["chunk_size"] = chunk_size
    manifest["chunks"] = {p: max(1, -(-len(package.blobs[p]) // chunk_size)) for p in PARTS}
    existed = client.exists(keys.model_manifest(ntag, version)) == 1
    written: list[str] = []
    try:
        for part in PARTS:
            blob = memoryview(package.blobs[part])
            for i, key in enumerate(_chunk_keys(ntag, version, part, manifest["chunks"][part])):
                piece = blob[i * chunk_size : (i + 1) * chunk_size]
                client.set(key, piece)
                written.append(key)
                if progress is not None:
                    progress(len(piece))
        client.hset(keys.model_manifest(ntag, version), mapping={
            MANIFEST_FIELD: json.dumps(manifest),
            "trained": int(package.trained),
            "created": manifest["created"],
        })
    except BaseException:
        # A half-written new version is removed; an existing one (same content,
        # maybe in service) is left alone: its old chunks are byte-identical.
        if not existed and written:
            try:
                client.delete(*written)
            except redis.RedisError:
                pass
        raise
    put_in_service(client, ntag, version)


def put_in_service(client: redis.Redis, ntag: str, version: str) -> None:
    """Make a stored ``version`` current, in one MULTI that also moves it to the head of
    the versions list: the list reads most recently served first, so the one after the
    current is always the version served before it (what :func:`rollback` returns to)."""
    pipe = client.pipeline(transaction=True)
    pipe.lrem(keys.model_versions(ntag), 0, version)
    pipe.lpush(keys.model_versions(ntag), version)
    pipe.set(keys.model_current(ntag), version)
    pipe.execute()


def load(client: redis.Redis, ntag: str, version: str | None = None) -> ModelPackage:
    """Read the current (or given) version from this node and verify every hash."""
    if version is None:
        version = current_version(client, ntag)
        if version is None:
            raise ModelPackageError(f"no model package on this node ({{{ntag}}}): push one first")
    manifest = read_manifest(client, ntag, version)
    blobs = {}
    for part in PARTS:
        try:
            count = int(manifest["chunks"][part])
        except (KeyError, TypeError, ValueError):
            raise ModelPackageError(
                f"model {version}: manifest lacks the {part} chunk count"
            ) from None
        pieces = client.mget(_chunk_keys(ntag, version, part, count))
        missing = [i for i, piece in enumerate(pieces) if piece is None]
        if missing:
            raise ModelPackageError(f"model {version}: {part} chunks {missing} are missing")
        blob = b"".join(pieces)
        if len(blob) != manifest["sizes"][part] or _sha(blob) != manifest["sha256"][part]:
            raise ModelPackageError(f"model {version}: {part} blob is corrupt (size or sha256)")
        blobs[part] = blob
    for name in TOKENIZERS:
        if _sha(manifest[name]) != manifest["sha256"][name]:
            raise ModelPackageError(f"model {version}: {name} is corrupt (sha256)")
    return ModelPackage(manifest, blobs)


def delete_version(client: redis.Redis, ntag: str, version: str) -> None:
    """Remove a stored version (never the current one)."""
    if current_version(client, ntag) == version:
        raise ModelPackageError(f"model {version} is current on {{{ntag}}}; not deleting it")
    try:
        chunks = read_manifest(client, ntag, version).get("chunks", {})
    except ModelPackageError:
        chunks = {}
    doomed = [keys.model_manifest(ntag, version)]
    for part, count in chunks.items():
        doomed += _chunk_keys(ntag, version, part, int(count))
    pipe = client.pipeline(transaction=True)
    pipe.lrem(keys.model_versions(ntag), 0, version)
    pipe.delete(*doomed)
    pipe.execute()


def prune(client: redis.Redis, ntag: str, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest versions (the current one always stays)."""
    current = current_version(client, ntag)
    doomed = [v for v in list_versions(client, ntag)[max(keep, 1):] if v != current]
    for version in doomed:
        delete_version(client, ntag, version)
    return doomed


def load_current(settings: Settings) -> ModelPackage:
    """The current package of the first master (every master holds the same one)."""
    first = masters(settings)[0]
    client = node_client(first.host, first.port, settings, socket_timeout=120)
    try:
        return load(client, first.tag)
    finally:
        client.close()


def push_to_cluster(
    settings: Settings,
    package: ModelPackage,
    progress: bool = True,
    keep: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[Master]:
    """Store ``package`` on every master (under its node tag), all masters at once.

    With ``keep``, older versions beyond the ``keep`` newest are deleted afterwards.
    Returns the masters written to.
    """
    nodes = masters(settings)
    if not nodes:
        raise ModelPackageError("the cluster reports no masters")
    bar = None
    lock = threading.Lock()
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=package.size * len(nodes), unit="B", unit_scale=True,
                   unit_divisor=1024, desc=f"push {package.version}")

    def advance(n: int) -> None:
        if bar is not None:
            with lock:
                bar.update(n)

    def push_one(master: Master) -> None:
        # Large values need a generous timeout: a 64 MiB SET takes about a second.
        client = node_client(master.host, master.port, settings, socket_timeout=120)
        try:
            store(client, master.tag, package, chunk_size=chunk_size, progress=advance)
            if keep is not None:
                prune(client, master.tag, keep)
        finally:
            client.close()

    try:
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            for future in [pool.submit(push_one, m) for m in nodes]:
                future.result()
    finally:
        if bar is not None:
            bar.close()
    return nodes


def rollback(client: redis.Redis, ntag: str) -> tuple[str, str]:
    """Make the version served before the current one current again; (from, to).

    Versions are listed most recently served first, so "previous" is the next one
    after the current in that list (after push A, push B, rollback, push C, a
    rollback returns to A, not to the abandoned B). Its manifest must be readable,
    else nothing changes.
    """
    current = current_version(client, ntag)
    versions = list_versions(client, ntag)
    if current not in versions or versions.index(current) + 1 >= len(versions):
        raise ModelPackageError(f"no version older than {current} is stored on this node")
    target = versions[versions.index(current) + 1]
    read_manifest(client, ntag, target)
    put_in_service(client, ntag, target)
    return current, target


def copy_versions(
    src: redis.Redis, src_tag: str, dst: redis.Redis, dst_tag: str, keep: int = 2
) -> str | None:
    """Give another node (``dst`` under its tag) the ``keep`` newest versions of ``src``,
    with the same current one; returns the current version (None if ``src`` has none).

    Each version is verified on read and stored oldest first, so the versions list
    keeps its order (a later ``rollback`` works there too); the ``current`` pointer is
    set last, so a worker of ``dst`` never sees a half-written package.
    """
    current = current_version(src, src_tag)
    if current is None:
        return None
    versions = list_versions(src, src_tag)[: max(keep, 1)]
    if current not in versions:
        versions.append(current)
    for version in reversed(versions):
        store(dst, dst_tag, load(src, src_tag, version))
    dst.set(keys.model_current(dst_tag), current)
    return current
