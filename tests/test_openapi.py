"""The gateway's OpenAPI description against the real gateway: schemathesis sends at
least 1,000 generated requests (valid and invalid) to a real gunicorn on the session
system and finds no 5xx and no response that breaks the description."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from qasearch.core.settings import Settings

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")
# Per operation and mode; nearly all go to POST /qasearch (the GET routes take no input).
NEGATIVE_EXAMPLES = 900
POSITIVE_EXAMPLES = 60  # valid questions reach the (slow) reader: fewer, and cheap ones


def _document(settings: Settings) -> dict:
    url = f"http://127.0.0.1:{settings.api_port}/openapi.json"
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        return json.load(resp)


def test_openapi_states_the_gateways_limits(guarded):
    doc = _document(guarded)
    assert doc["openapi"].startswith("3.0")
    assert {"/qasearch", "/healthz", "/readyz", "/openapi.json"} <= set(doc["paths"])
    request = doc["components"]["schemas"]["QueryRequest"]["properties"]
    assert request["search"]["maxLength"] == guarded.max_question_chars
    assert request["num_results"]["maximum"] == guarded.max_num_results
    assert request["top_k"]["maximum"] == guarded.max_top_k
    assert request["timeout_ms"]["maximum"] == guarded.max_timeout_ms
    responses = doc["paths"]["/qasearch"]["post"]["responses"]
    assert {"200", "400", "401", "413", "503"} <= set(responses)


def _schemathesis(settings: Settings, mode: str, examples: int, har: Path) -> tuple[str, int]:
    """Run the schemathesis CLI once; returns its output and the number of requests sent."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run",
        f"http://127.0.0.1:{settings.api_port}/openapi.json",
        "--checks", ",".join(CHECKS), "--mode", mode, "--max-examples", str(examples),
        "--phases", "examples,coverage,fuzzing", "--seed", "6", "--workers", "1",
        "--header", f"X-API-Key: {settings.api_key}",
        "--request-timeout", "60", "--suppress-health-check", "all",
        "--report", "har", "--report-har-path", str(har),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"schemathesis {mode} found problems:\n{output[-6000:]}"
    return output, len(json.loads(har.read_text())["log"]["entries"])


def test_schemathesis_finds_no_server_error_and_no_schema_violation(guarded, tmp_path):
    counts, seconds = {}, {}
    for mode, examples in (("negative", NEGATIVE_EXAMPLES), ("positive", POSITIVE_EXAMPLES)):
        started = time.monotonic()
        _, counts[mode] = _schemathesis(guarded, mode, examples, tmp_path / f"{mode}.har")
        seconds[mode] = time.monotonic() - started
    print("schemathesis: " + ", ".join(
        f"{counts[m]} {m} requests in {seconds[m]:.0f} s" for m in counts))
    assert sum(counts.values()) >= 1000
