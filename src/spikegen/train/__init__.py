"""Training: one trainer for VAE, pretraining and fine-tuning (see docs/training.md)."""

from spikegen.train.config import load_config
from spikegen.train.trainer import Trainer

__all__ = ["Trainer", "load_config"]
