"""Fixtures shared by the task tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A random tiny SpikeGen saved like shipped weights (no training needed for shapes/files).
    Read-only for the tests that use it."""
    from spikegen.models import SpikeGen, SpikeGenConfig
    from spikegen.models.vae import build_vae

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny") / "spikegen"
    SpikeGen(SpikeGenConfig.preset("tiny"), vae=build_vae("tiny-f4-d16")).save_pretrained(d)
    return d
