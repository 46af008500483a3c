"""Helpers for the remote tests: the ``artfs`` console script run with an S3 server's
credentials. The servers themselves are fixtures in tests/remote/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import ARTFS
from tests.remote.seaweed import S3Server


def remote_env(server: S3Server, home: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTFS_", "AWS_"))}
    return env | server.env | {"ARTFS_HOME": str(home)}


def run_artfs(
    server: S3Server, home: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The ``artfs`` console script on store ``home``, with the server's credentials and
    ``env`` on top; output captured, never raising on a non-zero exit."""
    return subprocess.run(
        [str(ARTFS), "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=remote_env(server, home) | env,
        timeout=90,
    )


def artfs_ok(server: S3Server, home: Path, *args: str) -> str:
    """:func:`run_artfs` that must succeed; its stdout."""
    done = run_artfs(server, home, *args)
    assert done.returncode == 0, done
    return done.stdout
