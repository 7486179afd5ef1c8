"""spikegen.tasks."""
