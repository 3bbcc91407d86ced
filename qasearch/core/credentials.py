"""The one place secrets are read: the Redis ACL password and the gateway API key.

Sources, in order:

1. the environment: ``QASEARCH_REDIS_PASSWORD`` (and ``QASEARCH_API_KEY``);
2. for the Redis password only, a file that ``qasearch cluster up`` wrote when it
   generated one: ``<secrets dir>/cluster-<digest of data_dir>.env``, mode 0600. The
   secrets dir is ``QASEARCH_SECRETS_DIR``, else ``$XDG_CONFIG_HOME/qasearch``, else
   ``~/.config/qasearch``: a per-user folder, never the repository (whose default
   ``var/cluster`` data dir is only gitignored, not private).

The file is keyed by the cluster's data folder, so every ``qasearch`` command run
against the same local cluster finds the same password without it ever being
printed, committed or passed on a command line.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

DEFAULT_USERNAME = "qasearch"
PASSWORD_VAR = "QASEARCH_REDIS_PASSWORD"
USERNAME_VAR = "QASEARCH_REDIS_USERNAME"
PASSWORD_BYTES = 32  # token_urlsafe(32): 256 bits, 43 characters of [A-Za-z0-9_-]


def secrets_dir(configured: str = "", environ: Mapping[str, str] | None = None) -> Path:
    """Where generated secrets live: ``configured``, else the user's config folder."""
    env = os.environ if environ is None else environ
    if configured:
        return Path(configured).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "qasearch"


def secret_file(data_dir: str, configured_dir: str = "",
                environ: Mapping[str, str] | None = None) -> Path:
    """The file holding the generated password of the cluster whose data is ``data_dir``."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    return secrets_dir(configured_dir, environ) / f"cluster-{digest}.env"


def _parse(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            found[name.strip()] = value.strip()
    return found


def stored_password(data_dir: str, configured_dir: str = "",
                    environ: Mapping[str, str] | None = None) -> str:
    """The generated password of that cluster, or "" when none was generated."""
    try:
        text = secret_file(data_dir, configured_dir, environ).read_text()
    except OSError:
        return ""
    return _parse(text).get(PASSWORD_VAR, "")


def generate_password(data_dir: str, username: str, configured_dir: str = "",
                      environ: Mapping[str, str] | None = None) -> tuple[str, Path]:
    """A new strong password for that cluster, stored (0600, folder 0700) before it is used,
    so a crash between generating and starting never leaves a cluster nobody can open."""
    path = secret_file(data_dir, configured_dir, environ)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# qasearch cluster whose data is in {Path(data_dir).resolve()}\n"
                f"{USERNAME_VAR}={username}\n{PASSWORD_VAR}={password}\n")
    os.replace(tmp, path)
    return password, path


def unheld_password_digest() -> str:
    """SHA-256 (hex) of a fresh random password that is dropped at once: nobody holds it.

    For the ``default`` ACL user of every node, which must be ``on`` (see
    :mod:`qasearch.cluster.nodeacl`) yet must never let anyone in. Only the digest is written
    into a node's config; a new one is made on every start.
    """
    return hashlib.sha256(secrets.token_urlsafe(PASSWORD_BYTES).encode()).hexdigest()


def forget_password(data_dir: str, configured_dir: str = "",
                    environ: Mapping[str, str] | None = None) -> bool:
    """Delete the stored password of that cluster (its data is gone); True if one existed."""
    path = secret_file(data_dir, configured_dir, environ)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
