"""spikegen."""
