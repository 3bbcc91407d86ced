#!/usr/bin/env bash
# Install everything qasearch needs on a fresh Debian 12 / Ubuntu machine:
# Debian's redis-server, prometheus, chromium and chromium-driver (apt-get, when missing), a virtualenv in .venv,
# torch==2.13.0 first and pinned (CPU), then the rest. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "==> installing redis-server (apt-get)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi

# Prometheus for tests/test_metrics.py, which starts its own server on a loopback
# port. The package also installs a system service (listening on every interface):
# it is stopped and disabled, since nothing here uses it.
if ! command -v prometheus >/dev/null 2>&1; then
    echo "==> installing prometheus (apt-get)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        prometheus >/dev/null
    if [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

# Chromium and its driver for tests/test_web_page.py, which drives the gateway's page
# (GET /) in a real headless browser through selenium (requirements-dev.txt).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "==> installing chromium and chromium-driver (apt-get)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating virtualenv .venv"
    "$PY" -m venv .venv
fi
stamp=".venv/.qasearch-installed"
want="$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing torch==2.13.0 (CPU) first, then the rest"
    quiet_pip() {  # pip -q still warns about local index folders some machines list
        .venv/bin/pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    }
    quiet_pip torch==2.13.0
    quiet_pip -r requirements.txt -r requirements-dev.txt
    quiet_pip --no-deps -e .
    echo "$want" > "$stamp"
fi
