"""Checks every request passes before a route runs: the optional API key and the body size.

* API key: when ``settings.api_key`` is set (``QASEARCH_API_KEY``, never a default),
  every route but the open ones (:func:`is_public`) wants it, in the
  ``X-API-Key`` header or as ``Authorization: Bearer <key>``; without it the answer
  is 401 JSON. The comparison is :func:`hmac.compare_digest`, so its time does not
  depend on how much of a guess was right.
* Body size: Flask's ``MAX_CONTENT_LENGTH`` is ``settings.max_body_bytes``; a larger
  body (declared, or streamed past the limit) is refused with 413 JSON before it is
  read into memory.

Health, readiness, metrics, the API description and the web page (``GET /`` and its
files under ``/static/``) stay open: they carry no corpus data, probes and Prometheus
scrapers should not need the key, and the page must load to ask the user for it.
"""

from __future__ import annotations

import hmac

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from qasearch.core.apiclient import API_KEY_HEADER
from qasearch.core.settings import Settings

PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/openapi.json"})
PUBLIC_PREFIXES = ("/static/",)  # the page's script and style (api/page.py)


def is_public(path: str) -> bool:
    """Whether ``path`` is served without the API key."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def presented_key() -> str | None:
    """The key the client sent, from ``X-API-Key`` or ``Authorization: Bearer``."""
    key = request.headers.get(API_KEY_HEADER)
    if key is not None:
        return key
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def key_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of the presented key with the configured one."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8"))


def json_error(status: int, message: str) -> tuple[Response, int]:
    """The gateway's one error shape: ``{"error": message}`` with ``status``."""
    return jsonify({"error": message}), status


def install(app: Flask, settings: Settings) -> None:
    """Register the API-key check and the body limit (with JSON errors) on ``app``."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    if settings.api_key:
        @app.before_request
        def require_api_key() -> tuple[Response, int] | None:
            if is_public(request.path) or key_matches(presented_key(), settings.api_key):
                return None
            response, status = json_error(
                401, f"missing or wrong API key: send it in the {API_KEY_HEADER} header")
            response.headers["WWW-Authenticate"] = 'Bearer realm="qasearch"'
            return response, status

    @app.errorhandler(413)
    def too_large(_exc: Exception) -> tuple[Response, int]:
        return json_error(413, f"request body larger than {settings.max_body_bytes} bytes")

    @app.errorhandler(HTTPException)
    def other_http_error(exc: HTTPException) -> tuple[Response, int]:
        # Werkzeug's own refusals (malformed requests, ...) as JSON like every other error.
        return json_error(exc.code or 500, exc.description or exc.name)
