"""The ``gwms`` command: one module per command group, loaded lazily."""
