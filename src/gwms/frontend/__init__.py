"""gwms.frontend."""
