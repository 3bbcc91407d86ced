"""What a client of the gateway sends with every request: JSON, and the API key when set.

One place for the header, so ``qasearch ask``, the benchmarks and tests agree with
the gateway (:mod:`api.guards`) on where the key goes.
"""

from __future__ import annotations

API_KEY_HEADER = "X-API-Key"


def json_headers(api_key: str = "") -> dict[str, str]:
    """Headers of a JSON request; with ``api_key`` (``settings.api_key``) the key too."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers[API_KEY_HEADER] = api_key
    return headers
