"""Random durations for the simulation: queue delays, glidein start-up, job runtimes.

A :class:`Distribution` is written in a scenario as a number (always that value) or
a mapping::

    {dist: fixed, value: 600}
    {dist: uniform, low: 30, high: 90}
    {dist: exponential, mean: 300}
    {dist: lognormal, median: 3600, sigma: 0.5}
    {dist: normal, mean: 3600, sd: 600}          # cut at min (default 0)

Values are seconds (``30m``/``6h`` texts accepted). Every draw is taken from a
``random.Random`` the caller owns, so a seed gives the same run again.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gwms.config import GwmsModel

__all__ = ["Distribution", "seconds"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def seconds(value: Any) -> float:
    """Seconds from a number or a text like ``90``, ``90s``, ``30m``, ``6h``, ``1d``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, found {value!r}")  # noqa: TRY004 - pydantic turns ValueError into a config error
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    raise ValueError(f"expected a duration (seconds, or like 30m, 6h, 1d), found {value!r}")


class Distribution(GwmsModel):
    """A distribution of non-negative durations (see the module docstring)."""

    dist: Literal["fixed", "uniform", "exponential", "lognormal", "normal"] = "fixed"
    value: float | None = None
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    median: float | None = None
    sigma: float = Field(0.5, ge=0)
    sd: float = Field(0.0, ge=0)
    min: float = Field(0.0, ge=0)
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _number(cls, data: Any) -> Any:
        if isinstance(data, (int, float, str)) and not isinstance(data, bool):
            return {"dist": "fixed", "value": data}
        return data

    @field_validator("value", "low", "high", "mean", "median", "sd", "min", "max", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return None if value is None else seconds(value)

    @model_validator(mode="after")
    def _complete(self) -> Distribution:
        need = {
            "fixed": ("value",),
            "uniform": ("low", "high"),
            "exponential": ("mean",),
            "lognormal": ("median",),
            "normal": ("mean",),
        }[self.dist]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise ValueError(f"a {self.dist} distribution needs {', '.join(missing)}")
        if self.dist == "uniform" and self.high < self.low:  # type: ignore[operator]
            raise ValueError("uniform: high must not be below low")
        return self

    def draw(self, rng: random.Random) -> float:
        """One value (seconds, >= ``min``, <= ``max`` if given)."""
        d = self.dist
        if d == "fixed":
            x = float(self.value)  # type: ignore[arg-type]
        elif d == "uniform":
            x = rng.uniform(self.low, self.high)  # type: ignore[arg-type]
        elif d == "exponential":
            mean = float(self.mean)  # type: ignore[arg-type]
            x = rng.expovariate(1.0 / mean) if mean > 0 else 0.0
        elif d == "lognormal":
            median = float(self.median)  # type: ignore[arg-type]
            x = median * math.exp(rng.gauss(0.0, self.sigma)) if median > 0 else 0.0
        else:
            x = rng.gauss(float(self.mean), self.sd)  # type: ignore[arg-type]
        x = max(x, self.min)
        if self.max is not None:
            x = min(x, self.max)
        return x

    def typical(self) -> float:
        """The mean (median for lognormal) — for summaries."""
        d = self.dist
        if d == "fixed":
            return float(self.value)  # type: ignore[arg-type]
        if d == "uniform":
            return (float(self.low) + float(self.high)) / 2  # type: ignore[arg-type]
        if d == "lognormal":
            return float(self.median)  # type: ignore[arg-type]
        return float(self.mean)  # type: ignore[arg-type]
