"""Model packages in a real Redis Cluster: push, verify, refuse corruption, atomic switch.

One test pushes the offline MiniLM package (the same content, hence the same
version, that ``qasearch model push --offline-minilm`` stores) to every master
under its node tag. The tests that corrupt, interrupt or prune use other
node-local tags, so they never disturb a model that workers may be serving.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

from loaders import model_push
from qasearch.core import keys, modelpkg
from qasearch.core.models import LoadedModel
from qasearch.core.partitions import in_ranges, slot_of_tag
from qasearch.core.topology import Master, masters, node_client
from tests import tiny_models

SMALL_CHUNK = 256 * 1024  # several chunks per blob even for the tiny package


def scratch_tag(master: Master, name: str) -> str:
    """A tag of our own whose slot ``master`` owns (never the node tag in service)."""
    for i in range(100_000):
        tag = f"{name}{i}"
        if in_ranges(slot_of_tag(tag), master.ranges) and tag != master.tag:
            return tag
    raise AssertionError("no scratch tag found")


@pytest.fixture(scope="module")
def tiny_a():
    return tiny_models.tiny_package(seed=0)


@pytest.fixture(scope="module")
def tiny_b():
    return tiny_models.tiny_package(seed=1)


@pytest.fixture()
def node(cluster):
    master = masters(cluster)[0]
    client = node_client(master.host, master.port, cluster, socket_timeout=60)
    try:
        yield client, master
    finally:
        client.close()


def test_push_stores_the_package_on_every_master(cluster):
    package, report = model_push.prepare(None, offline_minilm=True)
    assert package.trained is False and report.warnings
    again, _ = model_push.prepare(None, offline_minilm=True)
    assert again.version == package.version  # content hash: deterministic

    written = modelpkg.push_to_cluster(cluster, package, progress=False)
    nodes = masters(cluster)
    assert {m.node_id for m in written} == {m.node_id for m in nodes} and len(nodes) == 3
    for master in nodes:
        client = node_client(master.host, master.port, cluster, socket_timeout=60)
        try:
            # A plain node client follows no redirect: the keys are on this node.
            assert modelpkg.current_version(client, master.tag) == package.version
            assert modelpkg.list_versions(client, master.tag).count(package.version) == 1
            assert client.exists(keys.model_manifest(master.tag, package.version)) == 1
            loaded = modelpkg.load(client, master.tag)
            assert loaded.version == package.version
            assert loaded.blobs == package.blobs
            assert loaded.manifest["trained"] is False
            assert loaded.manifest["reader"]["config"]["hidden_size"] == 384
        finally:
            client.close()

    model = LoadedModel.from_package(loaded, threads=1)
    vectors = model.embed(["a cat sat on the mat", "the cat sat on a mat", "stock markets fell"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # a real embedder
    assert model.trained is False and model.uses_token_type_ids
    assert (model.cls_id, model.sep_id, model.pad_id) == (101, 102, 0)

    # Pushing the same content again changes nothing and adds no duplicate.
    modelpkg.push_to_cluster(cluster, package, progress=False)
    for master in nodes:
        client = node_client(master.host, master.port, cluster)
        try:
            assert modelpkg.list_versions(client, master.tag).count(package.version) == 1
        finally:
            client.close()


def test_round_trip_in_chunks(node, tiny_a):
    client, master = node
    tag = scratch_tag(master, "rt")
    modelpkg.store(client, tag, tiny_a, chunk_size=SMALL_CHUNK)
    manifest = modelpkg.read_manifest(client, tag, tiny_a.version)
    assert manifest["chunks"]["reader"] > 1 and manifest["chunks"]["embedder"] > 1
    loaded = modelpkg.load(client, tag, tiny_a.version)
    assert loaded.blobs == tiny_a.blobs and loaded.version == tiny_a.version
    model = LoadedModel.from_package(loaded, threads=1)
    assert model.embed(["x"]).shape == (1, 64)


def test_corrupt_or_missing_chunks_are_refused(node, tiny_a):
    client, master = node
    tag = scratch_tag(master, "bad")
    modelpkg.store(client, tag, tiny_a, chunk_size=SMALL_CHUNK)
    chunk = keys.model_chunk(tag, tiny_a.version, "reader", 1)
    original = client.get(chunk)
    client.setrange(chunk, 100, bytes([original[100] ^ 0xFF]))
    with pytest.raises(modelpkg.ModelPackageError, match="corrupt"):
        modelpkg.load(client, tag)
    client.delete(chunk)
    with pytest.raises(modelpkg.ModelPackageError, match="missing"):
        modelpkg.load(client, tag)
    client.set(chunk, original[:-1])
    with pytest.raises(modelpkg.ModelPackageError, match="corrupt"):
        modelpkg.load(client, tag)
    client.hset(keys.model_manifest(tag, tiny_a.version), "json", "{not json")
    with pytest.raises(modelpkg.ModelPackageError, match="manifest"):
        modelpkg.load(client, tag)
    # Storing the package again repairs it.
    modelpkg.store(client, tag, tiny_a, chunk_size=SMALL_CHUNK)
    assert modelpkg.load(client, tag).blobs == tiny_a.blobs


def test_nothing_stored_is_a_clear_error(node):
    client, master = node
    tag = scratch_tag(master, "empty")
    assert modelpkg.current_version(client, tag) is None
    assert modelpkg.list_versions(client, tag) == []
    with pytest.raises(modelpkg.ModelPackageError, match="no model package"):
        modelpkg.load(client, tag)
    with pytest.raises(modelpkg.ModelPackageError, match="no manifest"):
        modelpkg.load(client, tag, "0123456789abcdef")


def test_current_moves_only_after_a_complete_store(node, tiny_a, tiny_b):
    client, master = node
    tag = scratch_tag(master, "atomic")
    modelpkg.store(client, tag, tiny_a, chunk_size=SMALL_CHUNK)
    assert tiny_a.version != tiny_b.version

    written = []

    def fail_after_two_chunks(n: int) -> None:
        written.append(n)
        if len(written) == 2:
            raise ConnectionError("simulated crash in the middle of a push")

    with pytest.raises(ConnectionError):
        modelpkg.store(client, tag, tiny_b, chunk_size=SMALL_CHUNK,
                       progress=fail_after_two_chunks)
    assert modelpkg.current_version(client, tag) == tiny_a.version
    assert modelpkg.list_versions(client, tag) == [tiny_a.version]
    assert client.exists(keys.model_manifest(tag, tiny_b.version)) == 0
    assert client.exists(keys.model_chunk(tag, tiny_b.version, "reader", 0)) == 0  # cleaned up
    assert modelpkg.load(client, tag).version == tiny_a.version

    modelpkg.store(client, tag, tiny_b, chunk_size=SMALL_CHUNK)
    assert modelpkg.current_version(client, tag) == tiny_b.version
    assert modelpkg.list_versions(client, tag) == [tiny_b.version, tiny_a.version]
    assert modelpkg.load(client, tag, tiny_a.version).version == tiny_a.version

    # Re-storing an older version makes it current and moves it to the front.
    modelpkg.store(client, tag, tiny_a, chunk_size=SMALL_CHUNK)
    assert modelpkg.list_versions(client, tag) == [tiny_a.version, tiny_b.version]
    assert modelpkg.prune(client, tag, keep=1) == [tiny_b.version]
    assert modelpkg.list_versions(client, tag) == [tiny_a.version]
    assert client.exists(keys.model_chunk(tag, tiny_b.version, "embedder", 0)) == 0
    with pytest.raises(modelpkg.ModelPackageError):
        modelpkg.delete_version(client, tag, tiny_a.version)  # current: refused


def test_node_client_cannot_write_a_foreign_tag(cluster, tiny_a):
    # Sanity of the layout: a master refuses keys of a tag it does not own.
    first, second = masters(cluster)[:2]
    client = node_client(first.host, first.port, cluster)
    try:
        with pytest.raises(redis.ResponseError):  # MOVED
            modelpkg.current_version(client, second.tag)
    finally:
        client.close()


def test_rollback_returns_to_the_version_served_before(node, tiny_a, tiny_b):
    client, master = node
    tag = scratch_tag(master, "rollback")
    tiny_c = tiny_models.tiny_package(seed=2)
    for pkg in (tiny_a, tiny_b):
        modelpkg.store(client, tag, pkg, chunk_size=SMALL_CHUNK)
    assert modelpkg.rollback(client, tag) == (tiny_b.version, tiny_a.version)
    modelpkg.store(client, tag, tiny_c, chunk_size=SMALL_CHUNK)
    # a, then c: the abandoned b is not where a rollback goes
    assert modelpkg.rollback(client, tag) == (tiny_c.version, tiny_a.version)
    assert modelpkg.current_version(client, tag) == tiny_a.version
    assert modelpkg.list_versions(client, tag) == [tiny_a.version, tiny_c.version,
                                                   tiny_b.version]
    assert modelpkg.rollback(client, tag) == (tiny_a.version, tiny_c.version)
