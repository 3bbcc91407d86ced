"""The gateway's Flask app: a :class:`api.gateway.Gateway`, its methods wired to the routes.

``POST /qasearch`` fans a question out to every shard and merges the answers. Routes
(each answered by the Gateway method of :data:`ROUTES`):
    GET  /           the web page, a client of POST /qasearch (api/page.py, api/static/)
    POST /qasearch   {"search": str, "num_results": int = 5, "top_k": int, "timeout_ms": int,
                      "cache": bool = true, "passages": bool = false}
    GET  /healthz    the process is up
    GET  /readyz     every partition is served by a live, ready worker (else 503 + reasons)
    GET  /metrics    Prometheus metrics of all gunicorn workers (see api/metrics.py)
    GET  /openapi.json  the OpenAPI description of these routes (api/openapi.py)
"""

from __future__ import annotations

from flask import Flask

from api import guards, metrics, openapi, page
from api.gateway import Gateway
from qasearch.core.settings import Settings, load_settings

# (URL rule, HTTP method, the Gateway method that answers it, which is also the endpoint)
ROUTES = (
    (metrics.ROUTE, "GET", "metrics"),
    ("/qasearch", "POST", "qasearch"),
    ("/healthz", "GET", "healthz"),
    ("/readyz", "GET", "readyz"),
    (page.ROUTE, "GET", "page"),
    (page.STATIC_PREFIX + "<name>", "GET", "page_file"),
    (openapi.ROUTE, "GET", "openapi_json"),
)


def create_app(settings: Settings | None = None) -> Flask:
    """The gateway app for ``settings`` (else the environment's): a :class:`Gateway`
    whose methods answer the :data:`ROUTES`, behind the API-key and body-size guards."""
    settings = settings or load_settings()
    app = Flask("qasearch")
    guards.install(app, settings)  # API key (when set) and body limit, before any route
    gateway = Gateway(settings)
    metrics.instrument(app)  # counts and times every route's requests
    for rule, method, name in ROUTES:
        app.add_url_rule(rule, endpoint=name, view_func=getattr(gateway, name), methods=[method])
    app.register_error_handler(404, gateway.not_found)
    app.register_error_handler(405, gateway.not_allowed)
    return app
