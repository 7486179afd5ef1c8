from __future__ import annotations

import pytest
import torch

from spikegen.data import collate_samples
from spikegen.errors import ShapeError


def _sample(i: int, clean: bool = True, hw: int = 8) -> dict:
    return {
        "clean": torch.full((3, hw, hw), float(i)) if clean else None,
        "blurry": None,
        "spikes": torch.zeros(4, hw, hw, dtype=torch.uint8),
        "meta": {"index": i, "source": f"img{i}.png", "crop": [0, 0, hw, hw]},
    }


def test_stacks_tensors_keeps_none_and_lists_meta():
    b = collate_samples([_sample(0), _sample(1), _sample(2)])
    assert b["clean"].shape == (3, 3, 8, 8) and b["clean"][2, 0, 0, 0] == 2
    assert b["spikes"].dtype == torch.uint8 and b["spikes"].shape == (3, 4, 8, 8)
    assert b["blurry"] is None
    assert [m["index"] for m in b["meta"]] == [0, 1, 2]
    assert b["meta"][1]["source"] == "img1.png"


def test_works_as_dataloader_collate_fn():
    loader = torch.utils.data.DataLoader([_sample(i) for i in range(5)], batch_size=2, collate_fn=collate_samples)
    batches = list(loader)
    assert [len(b["meta"]) for b in batches] == [2, 2, 1]


def test_mixed_ground_truth_is_refused():
    with pytest.raises(ShapeError, match="clean"):
        collate_samples([_sample(0), _sample(1, clean=False)])


def test_different_sizes_are_refused_with_the_key_named():
    with pytest.raises(ShapeError, match="spikes|clean"):
        collate_samples([_sample(0, hw=8), _sample(1, hw=6)])


def test_empty_batch():
    with pytest.raises(ShapeError):
        collate_samples([])
