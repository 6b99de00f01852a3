"""gwms.monitor."""
