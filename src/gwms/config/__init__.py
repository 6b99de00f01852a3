"""gwms.config."""
