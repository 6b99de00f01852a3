"""gwms.glidein."""
