"""Test helpers: free loopback ports and Settings for a throw-away local cluster."""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
from pathlib import Path

from qasearch.cluster.localnodes import BUS_PORT_OFFSET
from qasearch.core.procs import port_free
from qasearch.core.settings import Settings

HOST = "127.0.0.1"


def _bindable(port: int) -> bool:
    return port_free(HOST, port)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    """First port of the kernel's range for outgoing connections (Linux default 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(count: int, tries: int = 200) -> int:
    """Base of ``count`` contiguous free ports whose cluster bus ports (+10000) are free too.

    Bases start at 10000 and stay low enough that node ports and their bus ports are both
    below the kernel's ephemeral range, where an outgoing connection could take a bus port
    between a node's stop and its restart (a rolling restart once failed on exactly that).
    """
    top = _ephemeral_low() - BUS_PORT_OFFSET - count
    if top <= 10000:
        raise RuntimeError(f"the kernel's ephemeral range starts at {_ephemeral_low()}: "
                           "no room below it for node and bus ports")
    rng = random.SystemRandom()
    for _ in range(tries):
        base = rng.randrange(10000, top)
        ports = range(base, base + count)
        if all(_bindable(p) and _bindable(p + BUS_PORT_OFFSET) for p in ports):
            return base
    raise RuntimeError(f"no block of {count} free loopback ports found")


def cluster_settings(root: Path, masters: int = 3, replicas: int = 1) -> Settings:
    """Settings for a cluster on fresh ports with its data and run dirs under ``root``."""
    base = free_port_block(masters * (1 + replicas))
    # A password of its own: every test then proves its component authenticates.
    return Settings(
        host=HOST, base_port=base, masters=masters, replicas_per_master=replicas,
        data_dir=str(root / "cluster"), run_dir=str(root / "run"), redis_url="",
        redis_password=secrets.token_urlsafe(24), secrets_dir=str(root / "secrets"),
    )


def redis_cli(settings: Settings, port: int, *args: str, auth: bool = True,
              timeout: float = 30) -> subprocess.CompletedProcess:
    """``redis-cli -c`` on one node, as the ACL user (password via REDISCLI_AUTH, never argv)."""
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    command = ["redis-cli", "-c", "-h", HOST, "-p", str(port)]
    if auth:
        command += ["--user", settings.redis_username]
        env["REDISCLI_AUTH"] = settings.redis_password
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
