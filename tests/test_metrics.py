"""Prometheus metrics: the gateway's and every worker's /metrics, and the Grafana dashboard's
expressions evaluated by a real Prometheus server (Debian's package) scraping the real system.

The model is the offline MiniLM package (untrained QA head): these tests check that
the figures exist and count what they say, never answer quality.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from qasearch.core import keys, modelpkg, monitoring
from qasearch.core.partitions import owned_partitions, partition_tag
from qasearch.core.topology import cluster_client, masters, node_client
from tests.helpers import free_port
from tests.system import REPO, owner_of_doc, post, qasearch, wait_for

DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))

GATEWAY_FAMILIES = {
    "qasearch_gateway_requests", "qasearch_gateway_request_seconds",
    "qasearch_gateway_shard_seconds", "qasearch_gateway_shard_replies",
    "qasearch_gateway_response_cache", "qasearch_gateway_embedder_seconds",
    "qasearch_redis_used_memory_bytes",
}
WORKER_FAMILIES = {
    "qasearch_worker_batch_size", "qasearch_worker_reader_seconds",
    "qasearch_worker_embedder_seconds", "qasearch_worker_request_seconds",
    "qasearch_worker_answer_cache_hits", "qasearch_worker_answer_cache_misses",
    "qasearch_worker_keymiss_triggers", "qasearch_worker_reader_errors",
    "qasearch_worker_requests", "qasearch_worker_queue_depth",
    "qasearch_worker_partition_passages", "qasearch_worker_model_info", "qasearch_worker_ready",
}


def _get(url: str, timeout: float = 30) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def _families(url: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(_get(url))}


def _sample(families: dict, family: str, suffix: str = "", **labels: str) -> float:
    """The value of the one sample of ``family`` with these labels (0 when absent)."""
    for sample in families[family].samples if family in families else ():
        if sample.name == family + suffix and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return sample.value
    return 0.0


def _gateway_metrics(settings) -> dict:
    return _families(f"http://127.0.0.1:{settings.api_port}/metrics")


def _worker_targets(settings) -> list[dict]:
    found = []
    for path in sorted(monitoring.targets_dir(settings).glob("worker-*.json")):
        found.extend(json.loads(path.read_text()))
    return found


def test_gateway_metrics_count_requests_by_route_and_status(system):
    before = _gateway_metrics(system)
    status, _ = post(system, {"search": "What causes the tides?", "num_results": 2})
    assert status == 200
    assert post(system, {"search": ""})[0] == 400
    after = _gateway_metrics(system)
    assert GATEWAY_FAMILIES <= set(after), GATEWAY_FAMILIES - set(after)

    def grew(status_code: str) -> float:
        labels = {"route": "/qasearch", "method": "POST", "status": status_code}
        return (_sample(after, "qasearch_gateway_requests", "_total", **labels)
                - _sample(before, "qasearch_gateway_requests", "_total", **labels))

    assert grew("200") == 1 and grew("400") == 1
    assert _sample(after, "qasearch_gateway_request_seconds", "_count", route="/qasearch") >= 2
    # one fan-out reply per master for the answered question
    for master in masters(system):
        assert _sample(after, "qasearch_gateway_shard_seconds", "_count", node=master.address) >= 1
    # Redis memory: every node of the cluster, masters and replicas
    memory = [s for s in after["qasearch_redis_used_memory_bytes"].samples]
    roles = sorted(s.labels["role"] for s in memory)
    assert roles == ["master"] * 3 + ["replica"] * 3
    assert all(s.value > 0 for s in memory)
    target = json.loads((monitoring.targets_dir(system) / "gateway.json").read_text())
    assert target[0]["targets"] == [f"127.0.0.1:{system.api_port}"]


def test_every_worker_serves_its_metrics_and_publishes_its_target(system):
    every = _worker_targets(system)
    nodes = {m.address: m for m in masters(system)}
    replicas = {f"{h}:{p}" for m in nodes.values() for h, p in m.replicas}
    # a standby beside each replica publishes its target too, and says it stands by
    assert sorted(t["labels"]["node"] for t in every) == sorted([*nodes, *replicas])
    targets = [t for t in every if t["labels"]["node"] in nodes]
    for target in every:
        if target["labels"]["node"] in replicas:
            families = _families(f"http://{target['targets'][0]}/metrics")
            (standby,) = families["qasearch_worker_standby"].samples
            assert standby.value == 1.0
            assert not families["qasearch_worker_partition_passages"].samples
    client = cluster_client(system)
    try:
        partitions = int(client.hget(keys.CORPUS_META, "partitions"))
        corpus = sum(
            client.scard(keys.passage_index(f"p{i:02d}")) for i in range(partitions)
        )
    finally:
        client.close()
    for target in targets:
        (address,) = target["targets"]
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1"
        families = _families(f"http://{address}/metrics")
        assert WORKER_FAMILIES <= set(families), WORKER_FAMILIES - set(families)
        master = nodes[target["labels"]["node"]]
        node = node_client(master.host, master.port, system, decode_responses=True)
        try:
            assert node.hget(keys.worker_state(master.tag), "metrics_port") == port
            version = modelpkg.current_version(node, master.tag)
        finally:
            node.close()
        (info,) = families["qasearch_worker_model_info"].samples
        assert info.labels == {"version": version, "trained": "false"}
        queues = {s.labels["queue"] for s in families["qasearch_worker_queue_depth"].samples}
        assert queues == {"batcher", "request_lag", "request_pending"}
        labelled = {s.labels["partition"]
                    for s in families["qasearch_worker_partition_passages"].samples}
        # only partitions of this node (empty ones have no index set, so no gauge)
        assert labelled <= {partition_tag(p) for p in owned_partitions(master.ranges, partitions)}

    def indexed() -> float:
        return sum(
            s.value for t in targets
            for s in _families(f"http://{t['targets'][0]}/metrics")[
                "qasearch_worker_partition_passages"].samples
        )

    wait_for(lambda: indexed() == corpus, timeout=120,
             what=f"workers' passages per partition to add up to the corpus ({corpus})")


def test_gateway_metrics_add_up_over_gunicorn_workers(system, tmp_path):
    """Two gunicorn workers, one /metrics: counts of both, and a fresh folder on start."""
    settings = system.replace(api_port=free_port(), run_dir=str(tmp_path / "run"))
    stale = monitoring.gateway_multiproc_dir(settings)
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"left by an older gateway")
    qasearch(settings, "serve", "--detach", "--workers", "2")
    try:
        assert not (stale / "counter_999999.db").exists()
        url = f"http://127.0.0.1:{settings.api_port}/healthz"

        def healthz_count() -> float:
            return _sample(_gateway_metrics(settings), "qasearch_gateway_requests", "_total",
                           route="/healthz", method="GET", status="200")

        before = healthz_count()  # the start's own /healthz polls are in there
        with ThreadPoolExecutor(8) as pool:
            assert all(s == "ok" for s in pool.map(
                lambda _: json.loads(_get(url))["status"], range(40)))
        served_by = {p.name.split("_")[-1] for p in stale.glob("counter_*.db")}
        counted = healthz_count() - before
        assert counted == 40, f"{counted} of 40 requests counted (processes {served_by})"
    finally:
        qasearch(settings, "serve", "--stop")
    assert not (monitoring.targets_dir(settings) / "gateway.json").exists()


# --- a real Prometheus evaluating every dashboard expression --------------------------


def _dashboard_exprs() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    return found


def test_dashboards_have_the_panels_a_user_watches():
    titles = " | ".join(json.loads(p.read_text())["title"] for p in DASHBOARDS)
    assert DASHBOARDS, "no dashboards in grafana/dashboards"
    panels = " | ".join(
        panel["title"].lower() for p in DASHBOARDS for panel in json.loads(p.read_text())["panels"]
    )
    for word in ("qps", "latency", "cache hit ratio", "per-shard inference", "batch sizes",
                 "queue depths", "errors", "redis memory", "model version"):
        assert word in panels, f"no panel about {word!r} in {titles}"
    exprs = " ".join(e for _, e in _dashboard_exprs())
    for quantile in ("0.50", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}" in exprs


class Prometheus:
    """Debian's prometheus binary on a free loopback port, with its own config and storage."""

    def __init__(self, config: Path, storage: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run scripts/install.sh (apt-get prometheus)"
        self.port = free_port()
        self.log = open(storage.parent / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={storage}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        body = json.loads(_get(f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}"))
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited; see {self.log.name}"
        try:
            return _get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) is not None
        except (urllib.error.URLError, OSError):
            return False

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        self.proc.terminate()  # our own child, by its pid
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus(system, tmp_path):
    config = tmp_path / "prometheus.yml"
    qasearch(system, "prometheus-config", "--scrape-interval", "1", "--output", str(config))
    server = Prometheus(config, tmp_path / "tsdb")
    try:
        wait_for(server.ready, timeout=120, what="prometheus to be ready")
        yield server
    finally:
        server.stop()


def _traffic(system, tmp_path) -> None:
    """Uncached and cached questions, a bad request, a new passage and a key-miss GET."""
    stamp = str(time.time_ns())
    question = f"Which metal conducts heat for pans {stamp}?"
    assert post(system, {"search": question, "cache": False})[0] == 200
    assert post(system, {"search": question, "num_results": 3})[0] == 200  # both caches miss
    assert post(system, {"search": question, "num_results": 3})[1]["cached"] is True
    assert post(system, {"search": question, "num_results": 4})[0] == 200  # answer-cache hits
    assert post(system, {"search": "   "})[0] == 400
    doc = tmp_path / "metrics-doc.jsonl"
    text = f"Copper bases spread heat evenly in pans ({stamp})."
    doc.write_text(json.dumps({"id": "metrics-doc", "title": "Metrics", "text": text}) + "\n")
    qasearch(system, "load", str(doc), "--quiet")
    tag, owner = owner_of_doc(system, "metrics-doc")
    node = node_client(owner.host, owner.port, system)
    try:
        pid = keys.passage_id("metrics-doc", 0)
        wait_for(lambda: node.hget(keys.tensors(tag, pid), "ids"), timeout=120,
                 what="the new passage's tensors")
        key = keys.answer(tag, pid, f"what spreads heat {stamp}?")
        assert node.get(key) is None  # the miss that triggers the worker
        wait_for(lambda: node.exists(key), timeout=120, what="the key-miss answer")
    finally:
        node.close()


def test_prometheus_evaluates_every_dashboard_expression(system, prometheus, tmp_path):
    def targets_up() -> bool:
        active = prometheus.api("targets")["activeTargets"]
        return len(active) == 1 + len(_worker_targets(system)) and all(
            t["health"] == "up" for t in active
        )

    wait_for(targets_up, timeout=120, what="gateway and every worker scraped and up")
    _traffic(system, tmp_path)
    # scraped after the traffic: the key-miss and the 400 are in Prometheus's data
    wait_for(lambda: prometheus.query("sum(qasearch_worker_keymiss_triggers_total) > 0")
             and prometheus.query('qasearch_gateway_requests_total{status="400"}'),
             timeout=120, what="prometheus to scrape the traffic")
    time.sleep(3)  # a few more scrapes, so every rate() window holds two samples after it
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    empty = [(where, expr) for where, expr in exprs if not prometheus.query(expr)]
    assert not empty, "dashboard expressions without data:\n" + "\n".join(
        f"  {where}: {expr}" for where, expr in empty)
    ratio = prometheus.query(
        'sum(rate(qasearch_gateway_response_cache_total{result="hit"}[5m]))'
        " / sum(rate(qasearch_gateway_response_cache_total[5m]))")
    assert 0 < float(ratio[0]["value"][1]) < 1


def test_generated_config_scrapes_gateway_and_workers(system):
    text = qasearch(system, "prometheus-config", "--scrape-interval", "2")
    config = yaml.safe_load(text)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert config["global"]["scrape_interval"] == "2s"
    folder = str(monitoring.targets_dir(system).resolve())
    assert jobs["qasearch-gateway"]["file_sd_configs"][0]["files"] == [f"{folder}/gateway.json"]
    assert jobs["qasearch-workers"]["file_sd_configs"][0]["files"] == [f"{folder}/worker-*.json"]
