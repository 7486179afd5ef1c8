"""spikegen.spikes."""
