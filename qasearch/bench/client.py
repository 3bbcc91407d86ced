"""Small HTTP helpers shared by the benchmarks (``qasearch bench``, ``qasearch redis-bench``).

The side-by-side benchmark itself lives in :mod:`qasearch.bench`.
"""

from __future__ import annotations

import json
import urllib.request

from qasearch.bench.timing import percentile
from qasearch.core.apiclient import json_headers

__all__ = ["percentile", "post_query"]


def post_query(
    url: str, question: str, num_results: int = 5, timeout: float = 60, cache: bool = True,
    api_key: str = "",
) -> dict:
    """``POST /qasearch`` once (with the API key when given); returns the decoded JSON body."""
    body = json.dumps({"search": question, "num_results": num_results, "cache": cache}).encode()
    req = urllib.request.Request(
        url, data=body, headers=json_headers(api_key), method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)
