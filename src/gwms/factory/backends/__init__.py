"""Backends by name: ``local``, ``slurm`` (later ``ssh``, ``arc``, ``htcondor-ce``).

A backend module registers a class (or a ``"module:Class"`` reference, imported on first
use) that has a classmethod ``from_config(settings, context)``::

    register_backend("slurm", "gwms.factory.backends.slurm:SlurmBackend")
    backend = create_backend("slurm", {"partition": "debug"}, BackendContext("e1", state_dir))

``settings`` is the entry's ``backend_settings`` mapping from the factory configuration;
``from_config`` raises :class:`gwms.errors.GwmsError` (say, :class:`BackendConfigError`)
for settings it cannot use, and the factory reports that with the entry's name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwms.errors import GwmsError
from gwms.factory.backends.base import Backend, BackendError, PilotSpec, SiteState, SiteStatus

__all__ = [
    "Backend",
    "BackendConfigError",
    "BackendContext",
    "BackendError",
    "PilotSpec",
    "SiteState",
    "SiteStatus",
    "backend_names",
    "create_backend",
    "register_backend",
]


class BackendConfigError(GwmsError):
    """An entry names an unknown backend, or gives settings its backend cannot use."""


@dataclass(frozen=True)
class BackendContext:
    """What the factory tells a backend about where it runs.

    Attributes:
        entry: the entry's name (for messages and job names).
        state_dir: a private directory (0700) for this entry's backend: its own state
            files, submit scripts, ... It survives factory restarts.
        factory: the factory's name, and ``instance`` its instance (glidein) name.
    """

    entry: str
    state_dir: Path
    factory: str = "factory"
    instance: str = "v1"


_BUILTIN: dict[str, str] = {
    "local": "gwms.factory.backends.local:LocalBackend",
    "slurm": "gwms.factory.backends.slurm:SlurmBackend",
}
_REGISTRY: dict[str, type | str] = dict(_BUILTIN)


def register_backend(name: str, cls: type | str) -> None:
    """Register a backend class (or ``"module:Class"``) under ``name``.

    Registering the same class again is allowed; another class under a taken name is not.
    """
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a backend name is a short word, not {name!r}")
    if isinstance(cls, str) and ":" not in cls:
        raise ValueError(f"a backend reference reads 'module:Class', not {cls!r}")
    current = _REGISTRY.get(name)
    if current is not None and current != cls and _BUILTIN.get(name) != current:
        raise ValueError(f"backend {name!r} is already registered as {current!r}")
    _REGISTRY[name] = cls


def backend_names() -> list[str]:
    """Names of the registered backends, sorted."""
    return sorted(_REGISTRY)


def backend_class(name: str) -> type:
    """The class registered as ``name`` (imported now if registered by reference)."""
    ref = _REGISTRY.get(name)
    if ref is None:
        close = difflib.get_close_matches(name, backend_names(), n=1)
        raise BackendConfigError(
            f"unknown backend {name!r} (known: {', '.join(backend_names())})",
            hint=f"did you mean {close[0]!r}?" if close else None,
        )
    if isinstance(ref, str):
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BackendConfigError(f"backend {name!r} is not available: {exc}") from None
        ref = getattr(module, attr)
        if not isinstance(ref, type):
            raise BackendConfigError(f"backend {name!r}: {module_name}:{attr} is not a class")
        _REGISTRY[name] = ref
    return ref


def create_backend(name: str, settings: Mapping[str, Any], context: BackendContext) -> Backend:
    """Make the backend ``name`` for one entry with the entry's ``backend_settings``.

    Raises:
        BackendConfigError: unknown backend, or settings it refuses.
    """
    cls = backend_class(name)
    from_config = getattr(cls, "from_config", None)
    if from_config is None:
        raise BackendConfigError(f"backend {name!r} has no from_config(settings, context)")
    try:
        backend = from_config(dict(settings), context)
    except BackendConfigError:
        raise
    except GwmsError as exc:
        raise BackendConfigError(f"backend {name!r} for entry {context.entry!r}: {exc}") from None
    return backend  # type: ignore[no-any-return]
