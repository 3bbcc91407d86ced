"""``qasearch serve``: the HTTP gateway under gunicorn (127.0.0.1:8080 by default)."""

from __future__ import annotations

import argparse

from qasearch.cluster import gateway
from qasearch.core.errors import CommandError
from qasearch.core.settings import load_settings


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings().replace(
        api_host=args.host, api_port=args.port, api_workers=args.workers
    )
    if args.stop:
        print("gateway stopped" if gateway.stop(settings) else "gateway was not running")
        return 0
    if not args.detach:
        gateway.run_foreground(settings)
        return 0
    try:
        pid, started = gateway.start_background(settings)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    state = "started" if started else "already running"
    print(f"gateway {state} on {gateway.url(settings)} (pid {pid})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the HTTP gateway (POST /qasearch) under gunicorn",
        description="Run the Flask gateway under gunicorn. Binds to loopback unless told so. "
                    "With QASEARCH_API_KEY set, POST /qasearch wants that key in the X-API-Key "
                    "header (or Authorization: Bearer); the description of every route is at "
                    "GET /openapi.json.",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 8080)")
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default 2)")
    parser.add_argument("--detach", action="store_true",
                        help="run in the background (pid file in the run folder)")
    parser.add_argument("--stop", action="store_true", help="stop a gateway started with --detach")
    parser.set_defaults(func=_serve)
