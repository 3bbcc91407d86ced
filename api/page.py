"""The gateway's web page: ``GET /`` and the files it uses under ``/static/``.

One hand-written page (api/static/index.html, app.js, style.css): no build step and
nothing fetched from elsewhere. It is a client of ``POST /qasearch`` only, so it
shows what the API returns and nothing more. The API-key guard lets these paths
through (api/guards.py): the page carries no corpus data and must load without a
key so that it can ask for one.
"""

from __future__ import annotations

from pathlib import Path

from flask import Response, abort, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent / "static"
ROUTE = "/"
STATIC_PREFIX = "/static/"

# Scripts, styles and requests from this origin only: no inline script runs, so even a
# passage that slipped past the page's escaping could not execute anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _protect(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def shipped_files() -> frozenset[str]:
    """The names of the files in api/static/: these and nothing else are served."""
    return frozenset(p.name for p in STATIC_DIR.iterdir() if p.is_file())


def index() -> Response:
    """``GET /``: the page itself."""
    return _protect(send_from_directory(STATIC_DIR, "index.html", mimetype="text/html"))


def static_file(name: str, shipped: frozenset[str]) -> Response:
    """``GET /static/<name>``: one of the ``shipped`` files; any other name is a 404."""
    if name not in shipped:
        abort(404)
    return _protect(send_from_directory(STATIC_DIR, name))
