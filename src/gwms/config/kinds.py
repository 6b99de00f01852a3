"""The registry of configuration kinds that ``gwms config check --kind`` knows.

A module that defines a configuration model registers it under a short name::

    register_config_kind("factory", FactoryConfig)

or, to avoid importing a heavy module early, by reference::

    register_config_kind("factory", "gwms.factory.config:FactoryConfig")
"""

from __future__ import annotations

import difflib
import importlib

from pydantic import BaseModel

from gwms.config.loader import ConfigError

_KINDS: dict[str, type[BaseModel] | str] = {}


def register_config_kind(name: str, model: type[BaseModel] | str) -> None:
    """Register ``model`` (a pydantic model class or ``"module:Class"``) as config kind ``name``.

    Registering the same model again under the same name is allowed; a different one
    is an error, so two modules cannot silently fight over a name.
    """
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a config kind name is a short word, not {name!r}")
    if isinstance(model, str):
        if ":" not in model:
            raise ValueError(f"a model reference reads 'module:Class', not {model!r}")
    elif not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"config kind {name!r} needs a pydantic model class, not {model!r}")
    current = _KINDS.get(name)
    if current is not None and current != model:
        raise ValueError(f"config kind {name!r} is already registered as {current!r}")
    _KINDS[name] = model


def config_kinds() -> list[str]:
    """The names of all registered configuration kinds, sorted."""
    return sorted(_KINDS)


def config_kind(name: str) -> type[BaseModel]:
    """The model registered as ``name``; :class:`ConfigError` if there is none."""
    model = _KINDS.get(name)
    if model is None:
        known = config_kinds()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else None
        listing = ", ".join(known) if known else "none registered yet"
        raise ConfigError(f"unknown config kind {name!r} (known kinds: {listing})", hint=hint)
    if isinstance(model, str):
        module_name, _, attr = model.partition(":")
        resolved = getattr(importlib.import_module(module_name), attr)
        if not (isinstance(resolved, type) and issubclass(resolved, BaseModel)):
            raise TypeError(f"config kind {name!r}: {model} is not a pydantic model class")
        _KINDS[name] = resolved
        return resolved
    return model


def unregister_config_kind(name: str) -> None:
    """Remove config kind ``name`` if registered (for tests)."""
    _KINDS.pop(name, None)
