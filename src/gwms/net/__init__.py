"""gwms.net."""
