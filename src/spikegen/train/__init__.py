"""spikegen.train."""
