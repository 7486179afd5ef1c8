"""spikegen.models."""
