"""gwms.web."""
