"""The startd agent's version (reported by ``gwms-startd.pyz version`` and in logs)."""

VERSION = "0.1.0"
