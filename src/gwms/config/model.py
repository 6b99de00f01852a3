"""The base class of every gwms configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GwmsModel(BaseModel):
    """A pydantic model for configuration: unknown keys are errors, not silently ignored.

    A misspelt setting (``max_idel``) is reported by :func:`gwms.config.load_config`
    with the key path, the line, and a "did you mean" suggestion.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)
