"""``qasearch stats``: each worker's reader statistics per model version (like AI.INFO)."""

from __future__ import annotations

import argparse
import json

from gears.stats import FIELDS, read_stats
from qasearch.core import keys, modelpkg
from qasearch.core.settings import load_settings
from qasearch.core.topology import masters, node_client


def _stats(args: argparse.Namespace) -> int:
    settings = load_settings()
    rows = []
    for master in masters(settings):
        client = node_client(master.host, master.port, settings)
        try:
            versions = modelpkg.list_versions(client, master.tag)
            for version in versions:
                values = read_stats(client, master.tag, version)
                rows.append({"node": master.address, "version": version,
                             "key": keys.stats(master.tag, version), **values})
        finally:
            client.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ["node", "version", *FIELDS]
    print("  ".join(f"{h:>14}" for h in header))
    for row in rows:
        cells = [row["node"], row["version"]] + [f"{row[f]:.0f}" for f in FIELDS]
        print("  ".join(f"{c:>14}" for c in cells))
    if rows:
        print(f"\nin Redis: redis-cli -c -p <port> HGETALL '{rows[0]['key']}'")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats", help="reader statistics per node and model version",
        description=(
            "Calls, samples, batches, reader time, errors, cache hits and misses and key-miss "
            "triggers per worker and model version, as stored in Redis by the workers."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_stats)
