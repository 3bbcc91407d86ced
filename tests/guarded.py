"""A second real gunicorn gateway on the session system, with an API key and tight limits.

It serves the same cluster and workers as ``system``; only the gateway's settings
differ: a required API key, and small bounds on ``top_k``, ``num_results``,
``timeout_ms`` and the body, so that schemathesis's valid requests stay cheap for
the (slow, CPU-bound) reader and the limits can be hit with small requests.
"""

from __future__ import annotations

import secrets

import pytest

from tests.helpers import free_port
from tests.system import qasearch, teardown


@pytest.fixture(scope="session")
def guarded(system, tmp_path_factory):
    """Settings of the keyed gateway (``api_key`` set, ``api_port`` its port)."""
    settings = system.replace(
        api_port=free_port(), api_key=secrets.token_urlsafe(24),
        run_dir=str(tmp_path_factory.mktemp("guarded-run")),
        max_top_k=2, max_num_results=3, max_timeout_ms=3000, deadline_ms=3000,
        max_question_chars=200, max_body_bytes=4096,
    )
    qasearch(settings, "serve", "--detach", "--workers", "1")
    try:
        yield settings
    finally:
        teardown(settings, "serve", "--stop")
