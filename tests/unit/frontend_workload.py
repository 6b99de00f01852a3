"""The shared frontend-matching fixture (a workload and the original frontend's answers).

A copy of the files is kept in ``tests/data/frontend-matching`` (taken from the project's
``shared/fixtures/frontend-matching``, which is also looked for next to the repository);
``GWMS_SHARED_FIXTURES`` may point elsewhere.
A missing fixture fails the tests that need it, with a message saying where it was looked for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from gwms.frontend.matching import Entry, MatchPolicy

NAME = "frontend-matching"
WORKLOAD = "workload_10000_1000_100.json"
EXPECTED = "expected_10000_1000_100.json"


def fixture_dir() -> Path:
    """The fixture directory, or a test failure naming every place looked at."""
    tried: list[Path] = []
    env = os.environ.get("GWMS_SHARED_FIXTURES")
    if env:
        tried.append(Path(env) / NAME)
    tried.append(Path(__file__).resolve().parents[1] / "data" / NAME)
    for parent in Path(__file__).resolve().parents:
        tried.append(parent / "shared" / "fixtures" / NAME)
        tried.append(parent.parent / "shared" / "fixtures" / NAME)
    for candidate in tried:
        if (candidate / WORKLOAD).is_file() and (candidate / EXPECTED).is_file():
            return candidate
    pytest.fail(
        f"the {NAME} fixture ({WORKLOAD}, {EXPECTED}) is missing; looked in "
        + ", ".join(str(p) for p in dict.fromkeys(tried))
        + " (set GWMS_SHARED_FIXTURES to the fixtures directory)"
    )


@lru_cache(maxsize=1)
def workload() -> dict[str, Any]:
    """The 10,000-job workload."""
    return json.loads((fixture_dir() / WORKLOAD).read_text())


@lru_cache(maxsize=1)
def expected() -> dict[str, Any]:
    """The original frontend's results for the workload."""
    return json.loads((fixture_dir() / EXPECTED).read_text())["results"]


def entry_key(glidein: Mapping[str, Any]) -> str:
    """The fixture's entry key: ``factory_pool|glidename|frontend_identity``."""
    return f"{glidein['factory_pool_node']}|{glidein['glidename']}|{glidein['frontend_identity']}"


def entries(data: Mapping[str, Any] | None = None) -> list[Entry]:
    """The workload's entries as gwms Entry objects."""
    data = data or workload()
    return [Entry(key=entry_key(g), name=g["glidename"], glidein=g) for g in data["entries"]]


def jobs_by_schedd(data: Mapping[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The workload's jobs per schedd."""
    data = data or workload()
    out: dict[str, list[dict[str, Any]]] = {}
    for job in data["jobs"]:
        out.setdefault(job["ScheddName"], []).append(job)
    return out


def policy(data: Mapping[str, Any] | None = None) -> MatchPolicy:
    """The workload's group policy."""
    data = data or workload()
    return MatchPolicy.from_texts(data["match_expr"], match_attrs=data["match_attrs"], attr_dict=data["attr_dict"])


def server_time(data: Mapping[str, Any] | None = None) -> int:
    """The schedd clock of the workload (every job carries it as ServerTime)."""
    data = data or workload()
    return int(data["jobs"][0]["ServerTime"])
