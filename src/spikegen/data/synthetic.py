"""``SyntheticPairs``: training samples made on the fly from any folder of images.

Per sample: read an image, upscale it when its short side is below ``size``, random crop and
horizontal flip, blur the clean crop with the motion-kernel bank (paper: the average of 8
40x40 kernels), and simulate spikes of the **sharp** crop — integrate-and-fire of its gray
intensity over ``frames`` steps (the default), or the official photon-sampling converter.

Why the sharp crop: a still image has no motion, so there is no exposure to integrate over;
the synthetic blur stands for camera motion during the RGB exposure, while the spike camera
(at 20-40 kHz) sees an essentially still, sharp scene within each of its short frames. This is
also what the official SpikeGen pretraining does (spikes from the ground-truth image).

Everything random is drawn from a generator seeded with ``(seed, epoch, index)`` (see
:mod:`spikegen.data.common`), so a sample is the same whichever loader worker makes it.

Example:
    >>> from torch.utils.data import DataLoader
    >>> from spikegen.data import SyntheticPairs, collate_samples
    >>> ds = SyntheticPairs("shared/data/images", 256, exclude=("mcmaster18",))  # doctest: +SKIP
    >>> ds.set_epoch(0)                                                            # doctest: +SKIP
    >>> batch = next(iter(DataLoader(ds, 4, collate_fn=collate_samples)))          # doctest: +SKIP
    >>> batch["clean"].shape, batch["spikes"].shape, batch["spikes"].dtype         # doctest: +SKIP
    (torch.Size([4, 3, 256, 256]), torch.Size([4, 8, 256, 256]), torch.uint8)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import torch

from spikegen.data.common import (
    DEFAULT_GAIN,
    PathLike,
    Range,
    SeededDataset,
    as_range,
    as_roots,
    as_size,
    coin,
    find_images,
    random_crop_box,
    rescale,
    resize_min_side,
    uniform,
)
from spikegen.degrade import motion_blur, rgb_to_gray
from spikegen.errors import SpikeFileError
from spikegen.image import load_image
from spikegen.media import IMAGE_SUFFIXES
from spikegen.spikes.simulate import integrate_and_fire, photon_sampling


class SyntheticPairs(SeededDataset):
    """Blurry RGB + spikes + sharp RGB samples synthesised from an image folder.

    Args:
        root: an image folder (flat, or ImageNet-style class subfolders), an image file, or a
            list of them.
        size: crop size, an int or ``(height, width)``. Images smaller than it are upscaled
            (bilinear, aspect kept) so their short side equals it; they never make an error.
        spikes: ``"if"`` (integrate-and-fire of the sharp crop's gray intensity, a static scene
            over ``frames`` steps, random initial charge) or ``"photon"`` (photon sampling:
            ``coverage`` of the pixels drawn per frame from a smoothed intensity map).
        frames: number of spike frames ``T``.
        v_th: integrate-and-fire threshold, or a ``(low, high)`` range drawn uniformly per sample.
        gain: charge per step of a white pixel (number or range); see
            :data:`spikegen.data.common.DEFAULT_GAIN` for the default 0.6.
        init: initial charge of integrate-and-fire, ``"random"`` (U[0, V_th), as real sensors)
            or ``"zero"``.
        blur_kernels, blur_size: number of motion kernels averaged, and their size in pixels.
        blur: ``False`` makes ``blurry`` a copy of ``clean`` (for VAE training or ablations).
        coverage, sigma, gamma, noise: photon-sampling parameters (paper: 0.1, 1, 1, 0.1).
        scale: optional ``(low, high)`` range of a random rescale applied before cropping
            (e.g. ``(0.5, 1.0)`` to see more of large photos); the short side never drops below
            ``size``.
        recursive: look into subfolders.
        exclude: names or globs of files/folders to leave out (see
            :func:`spikegen.data.common.is_excluded`); ``("mcmaster18",)`` is the project's
            validation split.
        seed: base seed of the per-sample generators.
        length: number of samples per epoch (default: the number of images); index ``i`` uses
            image ``i % n_images``.
        augment: random crop and flip; ``False`` gives a centre crop and no flip (validation).
            Blur and spikes are random (but seeded) either way.
        gray: probability that a sample's clean image is replaced by its BT.601 gray copy on
            all three channels (the reconstruction task feeds gray frames; autoencoder training
            mixes them in). Drawn per sample from its own generator.

    Returns (per sample):
        ``{"clean": [3,h,w] float, "blurry": [3,h,w] float, "spikes": [T,h,w] uint8 {0,1},
        "meta": {"source", "index", "epoch", "seed", "crop": [top, left, h, w], "flip",
        "resize", "spikes", "v_th", "gain", ...}}``.

    Raises:
        SpikeFileError: no image found under ``root`` (after ``exclude``), or an unreadable image.
    """

    def __init__(
        self,
        root: PathLike | Sequence[PathLike],
        size: int | tuple[int, int] = 256,
        *,
        spikes: Literal["if", "photon"] = "if",
        frames: int = 8,
        v_th: Range = 1.0,
        gain: Range = DEFAULT_GAIN,
        init: Literal["random", "zero"] = "random",
        blur_kernels: int = 8,
        blur_size: int = 40,
        blur: bool = True,
        coverage: float = 0.1,
        sigma: float = 1.0,
        gamma: float = 1.0,
        noise: float = 0.1,
        scale: tuple[float, float] | None = None,
        recursive: bool = True,
        exclude: Iterable[str] = (),
        seed: int = 0,
        length: int | None = None,
        augment: bool = True,
        gray: float = 0.0,
    ) -> None:
        if spikes not in ("if", "photon"):
            raise ValueError(f"spikes must be 'if' or 'photon', got {spikes!r}")
        if int(frames) < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        if init not in ("random", "zero"):
            raise ValueError(f"init must be 'random' or 'zero', got {init!r}")
        self.roots = as_roots(root)
        self.size = as_size(size)
        self.spikes = spikes
        self.frames = int(frames)
        self.v_th = as_range(v_th, "v_th")
        self.gain = as_range(gain, "gain")
        self.init = init
        self.blur_kernels = int(blur_kernels)
        self.blur_size = int(blur_size)
        self.blur = bool(blur)
        self.coverage, self.sigma, self.gamma, self.noise = float(coverage), float(sigma), float(gamma), float(noise)
        self.scale = as_range(scale, "scale") if scale is not None else None
        self.exclude = tuple(exclude)
        self.seed = int(seed)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.augment = bool(augment)
        self.gray = float(gray)
        if not 0.0 <= self.gray <= 1.0:
            raise ValueError(f"gray must lie in [0, 1], got {gray}")
        self.files: list[Path] = find_images(self.roots, recursive=recursive, exclude=self.exclude)
        if not self.files:
            where = ", ".join(str(r) for r in self.roots)
            excl = f" after exclude={list(self.exclude)}" if self.exclude else ""
            raise SpikeFileError(f"{where}: no image files found{excl} (looked {'recursively ' if recursive else ''}"
                                 f"for {', '.join(IMAGE_SUFFIXES)})")
        self._set_length(length, len(self.files))

    def __repr__(self) -> str:
        return (f"SyntheticPairs({len(self.files)} images, size={self.size}, spikes={self.spikes!r}, frames={self.frames}, "
                f"v_th={self.v_th}, gain={self.gain}, seed={self.seed}, epoch={self.epoch}, length={self.length})")

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        g = self.generator(index)
        path = self.files[index % len(self.files)]
        img = load_image(path)
        h0, w0 = img.shape[-2:]
        factor = 1.0
        if self.scale is not None:
            s = uniform(g, *self.scale)
            s = max(s, self.size[0] / h0, self.size[1] / w0)
            if abs(s - 1.0) > 1e-6:
                img = rescale(img, s, min_size=self.size)
                factor = s
        img, up = resize_min_side(img, self.size)
        factor *= up
        H, W = img.shape[-2:]
        top, left = random_crop_box(H, W, self.size, g if self.augment else None)
        flip = coin(g) if self.augment else False
        clean = img[:, top: top + self.size[0], left: left + self.size[1]]
        if flip:
            clean = clean.flip(-1)
        clean = clean.contiguous()
        to_gray = self.gray > 0 and uniform(g, 0.0, 1.0) < self.gray
        if to_gray:
            clean = rgb_to_gray(clean).expand(3, -1, -1).contiguous()
        v_th = uniform(g, *self.v_th)
        gain = uniform(g, *self.gain)
        if self.blur:
            blurry = motion_blur(clean[None], kernels=self.blur_kernels, size=self.blur_size, generator=g)[0]
            blurry = blurry.clamp(0, 1).contiguous()
        else:
            blurry = clean.clone()
        meta: dict[str, Any] = {
            "source": str(path), "index": index, "epoch": self.epoch, "seed": self.seed,
            "sample_seed": self.sample_seed(index), "crop": [top, left, self.size[0], self.size[1]],
            "flip": flip, "resize": round(float(factor), 6), "spikes": self.spikes, "frames": self.frames,
            "gray": bool(to_gray),
        }
        if self.spikes == "if":
            gray = rgb_to_gray(clean)  # [1, h, w]
            spk = integrate_and_fire(gray[None], v_th=v_th, gain=gain, steps=self.frames, init=self.init, generator=g)[0]
            meta.update({"v_th": v_th, "gain": gain, "init": self.init})
        else:
            spk = photon_sampling(clean[None], frames=self.frames, coverage=self.coverage, sigma=self.sigma,
                                  gamma=self.gamma, noise=self.noise, generator=g)[0]
            meta.update({"coverage": self.coverage, "sigma": self.sigma, "gamma": self.gamma, "noise": self.noise})
        if self.blur:
            meta.update({"blur_kernels": self.blur_kernels, "blur_size": self.blur_size})
        return {"clean": clean, "blurry": blurry, "spikes": spk.to(torch.uint8).contiguous(), "meta": meta}
