"""Shared test fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The throw-away PostgreSQL of the log index tests, one per session for every directory.
sys.path.insert(0, str(REPO / "tests" / "integration"))
from pg_fixtures import pg_cluster  # noqa: F401


@pytest.fixture(scope="session")
def gwms_exe() -> list[str]:
    """The command that runs ``gwms`` from this checkout's environment."""
    exe = Path(sys.executable).parent / "gwms"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "gwms"]


@pytest.fixture()
def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment for CLI subprocesses that cannot see the developer's pool."""
    env = dict(os.environ)
    env.pop("GWMS_POOL", None)
    env["HOME"] = str(tmp_path)
    return env
