"""Shared pytest fixtures: paths to the read-only shared data, CUDA marker handling."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPIKEGEN_SHARED", REPO.parent / "shared")).resolve()
DATA = SHARED / "data"

# One intra-op thread: the suite is many small ops, and on a busy 2-core machine two threads
# per op wait on each other (measured 5-10x slower); subprocess tests set OMP_NUM_THREADS=1.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only ``shared/data`` folder (never write into it)."""
    if not DATA.is_dir():
        pytest.fail(f"shared data folder not found at {DATA}; set SPIKEGEN_SHARED")
    return DATA


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; this machine has none")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
