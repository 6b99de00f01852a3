"""gwms.security."""
