"""gwms.classads."""
