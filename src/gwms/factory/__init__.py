"""gwms.factory."""
