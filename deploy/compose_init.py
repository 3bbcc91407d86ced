"""docker-compose's one-shot init: form the cluster, push a model, load the sample corpus.

Environment (see docker-compose.yml):
    QASEARCH_COMPOSE_NODES   "redis-1:7000,...,redis-6:7005", masters first
    QASEARCH_MASTERS         how many of them are masters (default 3)
    QASEARCH_READER          extractive-QA checkpoint (hub id or folder); when it cannot
                             be fetched, the offline MiniLM package (UNTRAINED QA head)
    QASEARCH_REDIS_PASSWORD  the nodes' ACL password
Safe to run again: a formed cluster, a pushed model and loaded passages are kept.
"""

from __future__ import annotations

import os
import subprocess
import sys

from qasearch.cluster import clusterform
from qasearch.core import modelpkg
from qasearch.core.settings import load_settings
from qasearch.core.topology import masters, node_client

SAMPLE = "data/sample/corpus.jsonl"
DEFAULT_READER = "distilbert-base-cased-distilled-squad"


def qasearch(*args: str) -> int:
    print("+ qasearch", " ".join(args), flush=True)
    return subprocess.call([sys.executable, "-m", "qasearch", *args])


def has_model(settings) -> bool:
    master = masters(settings)[0]
    client = node_client(master.host, master.port, settings)
    try:
        return modelpkg.current_version(client, master.tag) is not None
    finally:
        client.close()


def main() -> int:
    settings = load_settings()
    nodes = clusterform.parse_nodes(os.environ["QASEARCH_COMPOSE_NODES"])
    formed = clusterform.form(settings, nodes, settings.masters, settings.partitions_per_master)
    print("cluster formed" if formed else "cluster already formed", flush=True)
    if not has_model(settings):
        reader = os.environ.get("QASEARCH_READER") or DEFAULT_READER
        if qasearch("model", "push", reader) != 0:
            print("the reader cannot be fetched: pushing the trained MiniLM reader that "
                  "ships with qasearch (models/minilm-squad)", flush=True)
            if qasearch("model", "push") != 0:
                return 1
    return qasearch("load", SAMPLE, "--format", "jsonl")


if __name__ == "__main__":
    raise SystemExit(main())
