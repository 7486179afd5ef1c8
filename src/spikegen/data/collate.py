"""Batching of spikegen samples.

Every dataset in :mod:`spikegen.data` yields a dict ``{"clean", "blurry", "spikes", "meta"}``
where an image may be ``None`` (no ground truth, or no RGB input) and ``meta`` is a dict of
JSON-able values. ``torch.utils.data.default_collate`` fails on ``None`` and merges the meta
dicts key by key; :func:`collate_samples` stacks the tensors and keeps one meta dict per sample.

Example:
    >>> import torch
    >>> from spikegen.data.collate import collate_samples
    >>> s = {"clean": torch.zeros(3, 8, 8), "blurry": None,
    ...      "spikes": torch.zeros(4, 8, 8, dtype=torch.uint8), "meta": {"index": 0}}
    >>> b = collate_samples([s, s])
    >>> b["clean"].shape, b["blurry"], len(b["meta"])
    (torch.Size([2, 3, 8, 8]), None, 2)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from spikegen.errors import ShapeError


def collate_samples(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack a list of sample dicts into a batch dict.

    Rules, key by key (keys are the union over the samples):

    - tensors of equal shape -> stacked ``[B, ...]``; different shapes -> :class:`ShapeError`
      naming the key and the shapes (crop to a common ``size`` to batch whole images);
    - ``None`` (or a missing key) in every sample -> ``None``; ``None`` in only some samples ->
      :class:`ShapeError` (a batch must not mix samples with and without ground truth);
    - ``"meta"`` and any other value -> a list with one entry per sample.
    """
    if len(batch) == 0:
        raise ShapeError("cannot collate an empty batch")
    keys: list[str] = []
    for s in batch:
        for k in s:
            if k not in keys:
                keys.append(k)
    out: dict[str, Any] = {}
    for k in keys:
        vals = [s.get(k) for s in batch]
        if k == "meta":
            out[k] = [dict(v) if isinstance(v, Mapping) else v for v in vals]
            continue
        n_none = sum(v is None for v in vals)
        if n_none == len(vals):
            out[k] = None
            continue
        if all(isinstance(v, torch.Tensor) for v in vals):
            shapes = {tuple(v.shape) for v in vals}
            if len(shapes) != 1:
                raise ShapeError(f"cannot batch '{k}': samples have different shapes {sorted(shapes)}; "
                                 f"give the dataset a crop size so every sample has the same size")
            out[k] = torch.stack(list(vals), 0)
            continue
        if n_none and any(isinstance(v, torch.Tensor) for v in vals):
            raise ShapeError(f"cannot batch '{k}': {n_none} of {len(vals)} samples have no '{k}'")
        out[k] = list(vals)
    return out
