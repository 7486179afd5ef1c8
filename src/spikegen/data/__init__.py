"""spikegen.data."""
