"""gwms: a pilot-based workload management system built on the GlideinWMS design."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gwms")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
