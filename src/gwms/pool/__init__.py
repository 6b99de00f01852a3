"""gwms.pool."""
