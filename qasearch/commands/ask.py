"""``qasearch ask QUESTION``: ask the running gateway and print its answers."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

from qasearch.cluster import gateway
from qasearch.core.apiclient import json_headers
from qasearch.core.errors import CommandError
from qasearch.core.settings import load_settings


def _ask(args: argparse.Namespace) -> int:
    settings = load_settings().replace(api_host=args.host, api_port=args.port)
    body = json.dumps({"search": args.question, "num_results": args.num_results}).encode()
    req = urllib.request.Request(
        gateway.url(settings, "/qasearch"), data=body,
        headers=json_headers(settings.api_key), method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            reply = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise CommandError(f"HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        where = gateway.url(settings)
        raise CommandError(f"gateway unreachable at {where}: {exc.reason}") from None
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
        return 0
    if reply.get("warning"):
        print(f"WARNING: {reply['warning']}")
    for rank, r in enumerate(reply["results"], 1):
        print(f"{rank}. {r['answer']!r}  score {r['score']:.4f}  [{r['title']}] {r['sentencekey']}")
    shards = reply["shards"]
    print(f"{shards['answered']}/{shards['total']} shards answered in {reply['took_ms']} ms")
    for failure in shards["failed"]:
        print(f"  shard {failure['node']} failed: {failure['reason']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ask", help="ask the running gateway a question",
        description="POST a question to the gateway and print the ranked answers "
                    "(with the X-API-Key header when QASEARCH_API_KEY is set).",
    )
    parser.add_argument("question")
    parser.add_argument("-n", "--num-results", type=int, default=5)
    parser.add_argument("--host", help="gateway address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gateway port (default 8080)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON response")
    parser.set_defaults(func=_ask)
