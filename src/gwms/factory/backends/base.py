"""The one small interface between the factory and a batch system (a "backend").

One class per batch system, as Parsl's execution providers: the factory never knows more
about a site than this. A backend is given pilots to start (:class:`PilotSpec`), reports
their states at the site (:class:`SiteStatus`), removes and releases them, and makes
their stdout/stderr complete at the paths the factory chose.

Rules every backend follows (the factory relies on them):

- ``submit`` returns one result per spec, in order: the site's job id (a string the
  factory keeps and later passes to ``poll``/``remove``/``release``/``collect_output``)
  or a :class:`BackendError` for a spec the site refused. Raising instead means the whole
  batch failed before any pilot was started.
- ``submit`` is idempotent per ``pilot_id``: a spec whose ``pilot_id`` this backend
  already started gives back that pilot's site id and starts nothing. The factory writes a
  pilot's record before it submits; after a crash between the two it submits the same
  spec again, and this rule keeps that from starting a second pilot.
- ``poll`` answers for every id it is given; an id the site no longer knows (or never
  knew) is :attr:`SiteState.UNKNOWN`, never left out and never an exception.
- ``remove`` and ``release`` of an id that is gone or in a state where the call means
  nothing are no-ops, not errors.

Backends are registered by name in :mod:`gwms.factory.backends`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

from gwms.errors import GwmsError

__all__ = ["Backend", "BackendError", "PilotSpec", "SiteState", "SiteStatus"]


class BackendError(GwmsError):
    """The site refused a submission (or a backend call failed); the message says why."""


@dataclass(frozen=True)
class PilotSpec:
    """One glidein to start.

    Attributes:
        pilot_id: the factory's id (unique, safe as a file name).
        argv: the command that runs the glidein (glidein_startup.sh + args).
        env: environment variables the glidein gets (on top of what the site gives).
        stdout, stderr: where the glidein's stdout/stderr must end up (factory side).
        cpus, memory_mb, walltime_s: what to ask the site for.
        workdir: a scratch directory for backends that run locally (None: backend's choice).
    """

    pilot_id: str
    argv: list[str]
    env: dict[str, str]
    stdout: Path
    stderr: Path
    cpus: int
    memory_mb: int
    walltime_s: int
    workdir: Path | None


class SiteState(str, Enum):
    """A pilot's state as the site reports it."""

    PENDING = "pending"
    RUNNING = "running"
    HELD = "held"
    COMPLETED = "completed"
    FAILED = "failed"
    REMOVED = "removed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SiteStatus:
    """A pilot's state at the site, its exit code once it ended, and why (holds, failures)."""

    state: SiteState
    exit_code: int | None = None
    reason: str = ""


@runtime_checkable
class Backend(Protocol):
    """A batch system the factory submits pilots to."""

    name: str

    def submit(self, pilots: Sequence[PilotSpec]) -> list[str | BackendError]:
        """Start ``pilots``; one site job id or :class:`BackendError` per spec, in order."""
        ...

    def poll(self, site_ids: Sequence[str]) -> dict[str, SiteStatus]:
        """The state of each of ``site_ids`` (UNKNOWN for ids the site does not know)."""
        ...

    def remove(self, site_ids: Sequence[str]) -> None:
        """Remove (cancel, kill) these pilots at the site."""
        ...

    def release(self, site_ids: Sequence[str]) -> None:
        """Release these held pilots."""
        ...

    def collect_output(self, site_id: str, pilot: PilotSpec) -> None:
        """Make ``pilot.stdout``/``pilot.stderr`` complete at their paths (after it ended)."""
        ...
