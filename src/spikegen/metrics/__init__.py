"""spikegen.metrics."""
