"""The embedded all-in-one deployment behind ``gwms up``: every service on one machine."""
