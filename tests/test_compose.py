"""docker-compose.yml: a structural check of the whole setup (there is no Docker engine
here), ``docker compose config`` where the client has compose, and the init's
cluster forming run against real redis-server processes on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml

from qasearch.cluster import clusterform
from qasearch.cluster.localnodes import redis_server_binary
from qasearch.core import monitoring
from qasearch.core.partitions import balanced_slot_ranges
from qasearch.core.settings import Settings
from qasearch.core.topology import masters
from tests.helpers import free_port_block

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
REDIS_SERVICES = [f"redis-{i}" for i in range(1, 7)]
WORKER_SERVICES = [f"worker-{i}" for i in range(1, 7)]
RUN_DIR = "/var/lib/qasearch/run"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _mounts(service: dict) -> list[tuple[str, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out.append((source, target))
    return out


def _depends(service: dict) -> dict:
    deps = service.get("depends_on", {})
    return {name: {} for name in deps} if isinstance(deps, list) else deps


def test_every_service_is_complete_and_refers_to_what_exists(compose):
    services = compose["services"]
    assert set(REDIS_SERVICES + WORKER_SERVICES + ["init", "gateway", "prometheus",
                                                   "grafana"]) <= set(services)
    named_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: no image and no build"
        if "build" in service:
            assert (REPO / service["build"] / "Dockerfile").is_file(), f"{name}: no Dockerfile"
        for dep in _depends(service):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for source, _target in _mounts(service):
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} is not in the repository"
            else:
                assert source in named_volumes, f"{name}: volume {source} is not declared"


def test_published_ports_bind_loopback_and_secrets_come_from_the_environment(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    for name in REDIS_SERVICES:
        assert "ports" not in compose["services"][name], f"{name}: Redis is never published"
    text = COMPOSE.read_text()
    for variable in ("QASEARCH_REDIS_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"):
        for line in text.splitlines():
            if line.strip().startswith(variable + ":"):
                assert "${" in line and ":?" in line, f"{variable} must come from the environment"


def test_the_order_of_start_is_nodes_then_init_then_services(compose):
    services = compose["services"]
    init = services["init"]
    assert {d: c.get("condition") for d, c in _depends(init).items()} == {
        name: "service_healthy" for name in REDIS_SERVICES}
    nodes = init["environment"]["QASEARCH_COMPOSE_NODES"]
    assert [n.host for n in clusterform.parse_nodes(nodes)] == REDIS_SERVICES
    assert (REPO / init["command"][-1]).is_file()
    for name in [*WORKER_SERVICES, "gateway"]:
        assert _depends(services[name])["init"]["condition"] == "service_completed_successfully"
    for name in REDIS_SERVICES:
        assert services[name]["healthcheck"]["test"]


def test_one_worker_service_beside_each_node_each_with_a_port_of_its_own(compose):
    services = compose["services"]
    ports = [int(services[name]["environment"]["QASEARCH_NODE_PORT"]) for name in REDIS_SERVICES]
    assert len(set(ports)) == len(ports)  # pid and metrics target files are named by port
    nodes = clusterform.parse_nodes(services["init"]["environment"]["QASEARCH_COMPOSE_NODES"])
    assert [(n.host, n.port) for n in nodes] == list(zip(REDIS_SERVICES, ports))
    env = services["gateway"]["environment"]
    assert env["QASEARCH_REDIS_URL"] == ",".join(f"redis://{n.address}" for n in nodes)
    for node, worker in zip(REDIS_SERVICES, WORKER_SERVICES):
        # the supervisor of the node's own host: its worker, master or standby
        assert services[worker]["command"] == ["python", "-m", "gears.supervisor",
                                               "--host", node]
        assert services[worker]["environment"]["QASEARCH_METRICS_HOST"] == "0.0.0.0"
    assert "workers" not in services  # no container for all workers any more
    assert set(WORKER_SERVICES) <= set(_depends(services["prometheus"]))


def test_redis_nodes_are_configured_as_the_local_cluster_is():
    script = (REPO / "deploy" / "redis-node.sh").read_text()
    for line in ("port $port", "cluster-enabled yes", "notify-keyspace-events Em", "appendonly yes",
                 "cluster-require-full-coverage no", "cluster-node-timeout 2000",
                 "user default on resetpass #$unheld ~* &* +@all", "masterauth"):
        assert f"\n{line}" in script, f"redis-node.sh lacks {line!r}"
    assert "requirepass" not in script


def test_prometheus_scrapes_gateway_and_workers_through_the_shared_run_volume(compose):
    prometheus = compose["services"]["prometheus"]
    mounts = dict(_mounts(prometheus))
    config_source = next(s for s, t in mounts.items() if t == "/etc/prometheus/prometheus.yml")
    config_text = (REPO / config_source).read_text()
    # the checked-in file is what `qasearch prometheus-config` writes for this layout
    targets = f"{RUN_DIR}/metrics/targets"
    assert config_text == monitoring.prometheus_config(targets, 5.0)
    jobs = {j["job_name"]: j for j in yaml.safe_load(config_text)["scrape_configs"]}
    files = {name: j["file_sd_configs"][0]["files"][0] for name, j in jobs.items()}
    assert files == {"qasearch-gateway": f"{targets}/gateway.json",
                     "qasearch-workers": f"{targets}/worker-*.json"}
    # prometheus sees the run volume that the gateway and the workers write their targets to
    assert mounts.get("run") == RUN_DIR
    for name in ["gateway", *WORKER_SERVICES]:
        service = compose["services"][name]
        assert dict(_mounts(service)).get("run") == RUN_DIR
        assert service["environment"]["QASEARCH_RUN_DIR"] == RUN_DIR
        assert service["environment"]["QASEARCH_METRICS_ADVERTISE_HOST"] == name


def test_grafana_is_provisioned_with_prometheus_and_the_dashboards(compose):
    grafana = compose["services"]["grafana"]
    mounts = dict(_mounts(grafana))
    provisioning = REPO / next(s for s, t in mounts.items() if t == "/etc/grafana/provisioning")
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (datasource,) = source["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "--web.listen-address=0.0.0.0:9090" in compose["services"]["prometheus"]["command"]
    provider = yaml.safe_load((provisioning / "dashboards" / "qasearch.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    dashboards = REPO / next(s for s, t in mounts.items() if t == path)
    found = sorted(dashboards.glob("*.json"))
    assert found
    for dashboard in found:
        for panel in json.loads(dashboard.read_text())["panels"]:
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_docker_compose_config_accepts_the_file_where_compose_exists():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"],
                                        capture_output=True).returncode != 0:
        pytest.skip("no docker compose client here; the structural checks above stand in")
    env = {**os.environ, "QASEARCH_REDIS_PASSWORD": "x", "GRAFANA_ADMIN_PASSWORD": "x"}
    proc = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --- the init's cluster forming, on real nodes ---------------------------------------


@pytest.fixture
def bare_nodes(tmp_path):
    """Six empty cluster-enabled redis-server processes on loopback (no password)."""
    base = free_port_block(6)
    procs = []
    for port in range(base, base + 6):
        folder = tmp_path / str(port)
        folder.mkdir()
        procs.append(subprocess.Popen(
            [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
             "--dir", str(folder), "--cluster-enabled", "yes", "--save", "",
             "--cluster-node-timeout", "2000", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        ))
    try:
        yield [clusterform.Node("127.0.0.1", port) for port in range(base, base + 6)]
    finally:
        for proc in procs:  # our own children, by pid
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_init_forms_a_balanced_cluster_once(bare_nodes):
    settings = Settings(redis_password="", base_port=bare_nodes[0].port,
                        redis_url=f"redis://127.0.0.1:{bare_nodes[0].port}")
    assert clusterform.form(settings, bare_nodes, masters=3, partitions_per_master=8,
                            timeout=60) is True
    found = masters(settings)
    assert [m.port for m in found] == [n.port for n in bare_nodes[:3]]
    assert [m.ranges[0] for m in found] == balanced_slot_ranges(3, 8)
    replica = redis.Redis(host="127.0.0.1", port=bare_nodes[3].port)
    deadline = time.monotonic() + 60
    while replica.info("replication")["role"] != "slave" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert replica.info("replication")["master_port"] == bare_nodes[0].port
    replica.close()
    # a second run (the init container started again) changes nothing
    assert clusterform.form(settings, bare_nodes, masters=3, partitions_per_master=8,
                            timeout=60) is False


def test_node_lists_are_checked():
    with pytest.raises(clusterform.FormError, match="not HOST:PORT"):
        clusterform.parse_nodes("redis-1:6379,redis-2")
    with pytest.raises(clusterform.FormError, match="no nodes"):
        clusterform.parse_nodes(" , ")
