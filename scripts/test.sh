#!/usr/bin/env bash
# The test command: installs what it needs, then runs the whole suite against
# real redis-server processes, real workers and a real gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q --durations=25 "$@"  # the slowest, to keep the suite under 30 min
