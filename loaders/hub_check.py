"""Exit 0 when a model source can be used: a local folder, or a hub id the hub answers for.

Used by bootstrap_benchmark.sh to decide between a trained hub reader and the
offline MiniLM package. The hub is asked once, with a short timeout.
"""

from __future__ import annotations

import sys
from pathlib import Path


def reachable(source: str, timeout: float = 10.0) -> bool:
    if Path(source).is_dir():
        return True
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(source, timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not usable from here"
        return False
    return True


if __name__ == "__main__":
    sys.exit(0 if len(sys.argv) == 2 and reachable(sys.argv[1]) else 1)
