"""Security on real parts: ACL auth on every node, the generated password, the gateway's
API key and limits, and loopback-only listeners."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from qasearch.cluster import localcluster, workers
from qasearch.core import credentials
from qasearch.core.settings import Settings, to_environ
from qasearch.core.topology import node_client
from tests.helpers import HOST, free_port_block, redis_cli
from tests.system import wait_for

REPO = Path(__file__).resolve().parent.parent


def _plain(port: int, **auth: str) -> redis.Redis:
    # No retries: redis-py retries a refused AUTH (a ConnectionError) with backoff.
    return redis.Redis(host=HOST, port=port, socket_timeout=5, retry=Retry(NoBackoff(), 0),
                       **auth)


# --------------------------------------------------------------------------- Redis ACL


def test_every_node_refuses_clients_without_the_password(cluster):
    for spec in localcluster.layout(cluster):
        with pytest.raises(redis.AuthenticationError, match="(?i)authenticat"):
            _plain(spec.port).get("anything")  # NOAUTH
        with pytest.raises(redis.AuthenticationError):
            _plain(spec.port, username=cluster.redis_username, password="wrong").ping()
        with pytest.raises(redis.AuthenticationError):  # nobody holds the default's password
            _plain(spec.port, password=cluster.redis_password).ping()
        cli = redis_cli(cluster, spec.port, "GET", "anything", auth=False)
        assert "NOAUTH" in cli.stdout + cli.stderr
        assert redis_cli(cluster, spec.port, "PING").stdout.strip() == "PONG"
        assert node_client(HOST, spec.port, cluster).ping()


def test_replicas_authenticate_to_their_masters(cluster):
    # Roles are read, not taken from the layout: a failover test may have swapped them.
    def linked_replicas() -> list[int]:
        found = []
        for spec in localcluster.layout(cluster):
            info = node_client(HOST, spec.port, cluster, decode_responses=True).info("replication")
            if info["role"] == "slave" and info.get("master_link_status") == "up":
                found.append(spec.port)
        return found

    expected = cluster.masters * cluster.replicas_per_master
    wait_for(lambda: len(linked_replicas()) == expected, timeout=60,
             what=f"{expected} replicas linked to their masters")


def test_node_config_binds_loopback_and_keeps_the_secret_private(cluster):
    for spec in localcluster.layout(cluster):
        conf = spec.conf.read_text()
        assert f"bind {HOST}\n" in conf and "protected-mode yes" in conf
        assert cluster.redis_password not in conf
        auth = spec.folder / "auth.conf"
        assert stat.S_IMODE(auth.stat().st_mode) == 0o600
        acl = auth.read_text()
        # on (AOF replay of MULTI/EXEC runs as it), behind a digest, never a clear password
        default = next(x for x in acl.splitlines() if x.startswith("user default "))
        assert default.startswith("user default on resetpass #") and ">" not in default
        assert "nopass" not in acl
        user_line = next(x for x in acl.splitlines() if x.startswith('user "qasearch"'))
        assert cluster.redis_password not in user_line  # the server keeps only its hash
        client = node_client(HOST, spec.port, cluster, decode_responses=True)
        assert client.config_get("bind")["bind"] == HOST


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qasearch", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cluster_up_generates_a_password_outside_the_repo_that_every_command_finds(tmp_path):
    base = free_port_block(1)
    secrets_dir = tmp_path / "config" / "qasearch"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QASEARCH_")}
    env.update(QASEARCH_SECRETS_DIR=str(secrets_dir), QASEARCH_BASE_PORT=str(base),
               QASEARCH_MASTERS="1", QASEARCH_REPLICAS_PER_MASTER="0",
               QASEARCH_DATA_DIR=str(tmp_path / "cluster"), QASEARCH_RUN_DIR=str(tmp_path / "r"))
    up = _cli(env, "cluster", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        [stored] = list(secrets_dir.glob("cluster-*.env"))
        assert str(stored) in up.stdout
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
        password = credentials.stored_password(str(tmp_path / "cluster"), str(secrets_dir))
        assert len(password) >= 40 and password not in up.stdout + up.stderr
        with pytest.raises(redis.AuthenticationError):
            _plain(base).ping()
        assert _plain(base, username="qasearch", password=password).ping()
        # a second command, with nothing in its environment but the folders, gets in
        status = _cli(env, "cluster", "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        assert json.loads(status.stdout)["state"] == "ok"
        # a wrong password from the environment is refused with a clear message
        wrong = _cli({**env, "QASEARCH_REDIS_PASSWORD": "not-it"}, "cluster", "status")
        assert wrong.returncode == 2 and "refused user 'qasearch'" in wrong.stderr
    finally:
        down = _cli(env, "cluster", "down", "--purge")
    assert down.returncode == 0 and "removed its generated Redis password" in down.stdout
    assert not list(secrets_dir.glob("cluster-*.env"))


def test_default_secrets_dir_is_per_user_and_outside_the_repo():
    folder = credentials.secrets_dir("", {"HOME": "/home/someone"})
    assert folder == Path("/home/someone/.config/qasearch")
    assert credentials.secrets_dir("", {"XDG_CONFIG_HOME": "/x"}) == Path("/x/qasearch")
    assert not credentials.secret_file(Settings().data_dir).is_relative_to(REPO)


def test_up_refuses_to_start_nodes_without_a_password(tmp_path):
    settings = Settings(base_port=free_port_block(1), masters=1, replicas_per_master=0,
                        data_dir=str(tmp_path / "c"))
    with pytest.raises(localcluster.ClusterError, match="no Redis password"):
        localcluster.up(settings)
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- gateway


def _request(settings, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(
        f"http://{HOST}:{settings.api_port}{path}", data=body, method="POST" if body else "GET",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.load(resp), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


QUESTION = json.dumps({"search": "What causes the tides?", "num_results": 1,
                       "top_k": 1}).encode()


@pytest.mark.parametrize("headers", [
    {}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"},
])
def test_keyed_gateway_refuses_requests_without_the_key(guarded, headers):
    status, body, reply_headers = _request(guarded, "/qasearch", QUESTION, headers)
    assert status == 401 and "API key" in body["error"]
    assert reply_headers["WWW-Authenticate"].startswith("Bearer")


def test_keyed_gateway_answers_with_the_key_in_either_header(guarded):
    for headers in ({"X-API-Key": guarded.api_key},
                    {"Authorization": f"Bearer {guarded.api_key}"}):
        status, body, _ = _request(guarded, "/qasearch", QUESTION, headers)
        assert status == 200, body
        assert body["search"] == "What causes the tides?" and body["shards"]["total"] == 3


def test_operational_routes_stay_open_with_a_key(guarded):
    assert _request(guarded, "/healthz")[:2] == (200, {"status": "ok"})
    status, doc, _ = _request(guarded, "/openapi.json")
    assert status == 200 and doc["paths"]["/qasearch"]["post"]["security"]
    assert _request(guarded, "/readyz")[0] == 200


def test_qasearch_ask_sends_the_key(guarded):
    env = {**os.environ, **to_environ(guarded), "HF_HUB_OFFLINE": "1"}
    ok = _cli(env, "ask", "What causes the tides?", "-n", "1")
    assert ok.returncode == 0, ok.stderr
    assert "/3 shards answered" in ok.stdout  # how many in time does not matter here
    refused = _cli({**env, "QASEARCH_API_KEY": ""}, "ask", "What causes the tides?")
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr


def test_default_num_results_stays_within_a_lower_limit(guarded):
    status, body, _ = _request(guarded, "/qasearch", b'{"search": "x", "top_k": 1}',
                               {"X-API-Key": guarded.api_key})
    assert status == 200, body
    assert len(body["results"]) <= guarded.max_num_results


@pytest.mark.parametrize("body, status, message", [
    (b'{"search": "' + b"a" * 5000 + b'"}', 413, "larger than 4096 bytes"),
    (b'{"search": "' + b"a" * 201 + b'"}', 400, "longer than 200 characters"),
    (b'{"search": "x", "num_results": 4}', 400, '"num_results" must be between 1 and 3'),
    (b'{"search": "x", "top_k": 3}', 400, '"top_k" must be between 1 and 2'),
    (b'{"search": "x", "timeout_ms": 3001}', 400, '"timeout_ms" must be between 1 and 3000'),
])
def test_limits_give_clear_errors(guarded, body, status, message):
    got, reply, _ = _request(guarded, "/qasearch", body, {"X-API-Key": guarded.api_key})
    assert got == status and message in reply["error"], reply


def _listeners(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_every_listener_binds_loopback(system, guarded):
    loopback = "0100007F"  # 127.0.0.1, little-endian hex
    for settings in (system, guarded):
        assert _listeners(settings.api_port) == {loopback}
    for spec in localcluster.layout(system):
        assert _listeners(spec.port) == {loopback}
        assert _listeners(spec.port + localcluster.BUS_PORT_OFFSET) == {loopback}
    ports = [int(s["metrics_port"]) for s in workers.states(system) if s.get("metrics_port")]
    assert len(ports) == 3  # every worker's /metrics
    for port in ports:
        assert _listeners(port) == {loopback}
    assert Settings().host == Settings().api_host == "127.0.0.1"
