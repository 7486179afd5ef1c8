"""Readers for the spike dataset layouts users already have on disk.

- :class:`SpikeFolderPairs`: the Spk2ImgNet / Spike-Zoo layout, ``spike/*.dat`` + ``gt/*.png``
  with one full spike stream per ground-truth frame (``*_key_id151`` names the GT frame).
- :class:`SREDSDataset`: STIR's SREDS folders (spike ``.dat`` per REDS frame, grouped by scene,
  ``interp_20_alpha_0.40`` simulation settings in the path).
- :class:`GoproSpikeDataset`: S-SDM's spike GOPRO (``blur_data`` / ``sharp_data`` /
  ``spike_data`` per sequence; spikes at a quarter of the image size).

All yield the spikegen sample dict ``{"clean", "blurry", "spikes", "meta"}``. Reconstruction
data has no RGB input, so ``blurry`` is ``None`` there (the model makes its TFP pseudo-frame).
The exact trees are drawn in ``docs/data.md``. ``.dat`` files are read with
:func:`spikegen.spikes.io.read_dat` (rows flipped, the PKU convention); the frame size is taken
from the ground-truth image unless given, and checked against the file size.

Example:
    >>> from spikegen.data import SpikeFolderPairs
    >>> ds = SpikeFolderPairs("shared/data/spikes/synthetic_reds", window=61)   # doctest: +SKIP
    >>> s = ds[0]; s["spikes"].shape, s["clean"].shape                           # doctest: +SKIP
    (torch.Size([61, 250, 400]), torch.Size([3, 250, 400]))
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikegen.data.common import PathLike, SeededDataset, as_size, coin, image_size, random_crop_box
from spikegen.errors import ShapeError, SpikeFileError
from spikegen.image import load_image
from spikegen.media import IMAGE_SUFFIXES, natural_key
from spikegen.spikes.io import DatFile, read_dat


# --------------------------------------------------------------------------------------------
# helpers


def dat_frame_count(path: Path, height: int, width: int) -> int:
    """Frames in a PKU ``.dat`` file of ``height x width`` frames, from its size (checked).

    Raises :class:`SpikeFileError` naming the file when the size is not a whole number of frames
    (the usual sign of a wrong height/width).
    """
    try:
        return DatFile(path, height, width).num_frames
    except SpikeFileError as exc:
        raise SpikeFileError(f"{exc} (frame size {height}x{width} assumed; give the right height/width)") from None


def read_dat_frames(path: Path, height: int, width: int, start: int, stop: int) -> torch.Tensor:
    """Frames ``start .. stop-1`` of a ``.dat`` file as uint8 ``[n, H, W]`` (rows flipped).

    Decoded on the calling thread (``workers=1``): data-loader workers give the parallelism.
    """
    spk = torch.from_numpy(read_dat(path, height, width, frames=(start, stop), workers=1))
    if spk.shape[0] != stop - start:
        raise SpikeFileError(f"{path}: expected frames {start}..{stop - 1}, got {spk.shape[0]}")
    return spk


def _find_image(folder: Path, stem_rel: Path) -> Path | None:
    for s in IMAGE_SUFFIXES + tuple(x.upper() for x in IMAGE_SUFFIXES):
        p = folder / stem_rel.with_name(stem_rel.name + s)
        if p.is_file():
            return p
    return None


def _load_target(path: Path, color: bool) -> torch.Tensor:
    if color:
        return load_image(path)
    return load_image(path, gray=True).expand(3, -1, -1).contiguous()


class _CropMixin(SeededDataset):
    size: tuple[int, int] | None
    augment: bool

    def _crop(self, index: int, H: int, W: int, *, align: int = 1) -> tuple[int, int, int, int, bool]:
        if self.size is None:
            return 0, 0, H, W, False
        if self.size[0] > H or self.size[1] > W:
            raise ShapeError(f"crop size {self.size} is larger than the data ({H}x{W})")
        if self.size[0] % align or self.size[1] % align:
            raise ShapeError(f"crop size {self.size} must be a multiple of {align} (the image/spike size ratio)")
        g = self.generator(index) if self.augment else None
        top, left = random_crop_box(H, W, self.size, g, align=align)
        flip = coin(g) if g is not None else False
        return top, left, self.size[0], self.size[1], flip


# --------------------------------------------------------------------------------------------
# Spk2ImgNet / Spike-Zoo folders


class SpikeFolderPairs(_CropMixin):
    """``spike/*.dat`` + ``gt/*.png`` pairs (Spk2ImgNet, Spike-Zoo ``reds_base``).

    Layout (``split`` adds one level, as Spike-Zoo's ``train/`` and ``test/``)::

        root/[split/]spike/NAME.dat     one spike stream per sample (e.g. 301 frames 250x400)
        root/[split/]gt/NAME.png        its ground-truth frame (any image suffix)

    Subfolders of ``spike/`` are allowed (matched to the same subfolders of ``gt/``).

    Args:
        root, split: the dataset folder and optional split subfolder.
        window: spike frames per sample, centred on the GT frame (``None`` = the whole stream).
        height, width: spike frame size; default: the size of the GT image (or 250x400 when
            there is no ``gt/`` folder). Checked against every file's size.
        key_pattern: regex whose first group gives the GT frame number in the file name
            (``key_id151``); without a match the GT frame is the middle one (``T // 2``).
        key_base: numbering of ``key_pattern`` (1: ``key_id151`` of a 301-frame stream is frame
            150 counting from 0, its middle; that is the Spk2ImgNet convention).
        color: keep the GT in colour; default: gray, repeated on 3 channels (the reconstruction
            target of the STIR/SREDS protocol).
        size, augment, seed: optional random crop (and flip) of ``size``; centred without ``augment``.

    Returns (per sample):
        ``{"clean": [3,H,W] or None, "blurry": None, "spikes": [window,H,W] uint8, "meta": {"source",
        "gt", "index", "centre", "window": [start, stop], "crop", "flip"}}``.
    """

    def __init__(
        self,
        root: PathLike,
        split: str | None = None,
        *,
        window: int | None = 61,
        height: int | None = None,
        width: int | None = None,
        spike_dir: str = "spike",
        gt_dir: str = "gt",
        key_pattern: str | None = r"key_id(\d+)",
        key_base: int = 1,
        color: bool = False,
        size: int | tuple[int, int] | None = None,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        base = Path(root) / split if split else Path(root)
        sdir, gdir = base / spike_dir, base / gt_dir
        if not sdir.is_dir():
            raise SpikeFileError(f"{sdir}: missing (expected {spike_dir}/*.dat under {base})")
        if window is not None and int(window) < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = int(window) if window is not None else None
        self.color, self.size, self.augment, self.seed = bool(color), as_size(size), bool(augment), int(seed)
        spikes = sorted(sdir.rglob("*.dat"), key=natural_key)
        if not spikes:
            raise SpikeFileError(f"{sdir}: no .dat files")
        has_gt = gdir.is_dir()
        self.items: list[dict[str, Any]] = []
        for sp in spikes:
            rel = sp.relative_to(sdir).with_suffix("")
            gt = _find_image(gdir, rel) if has_gt else None
            if has_gt and gt is None:
                raise SpikeFileError(f"{sp}: no ground-truth image {gdir / rel}.png (or other image suffix)")
            self.items.append({"spike": sp, "gt": gt})
        if height is None or width is None:
            if has_gt:
                height, width = image_size(self.items[0]["gt"])
            else:
                height, width = 250, 400
        self.height, self.width = int(height), int(width)
        pat = re.compile(key_pattern) if key_pattern else None
        for it in self.items:
            T = dat_frame_count(it["spike"], self.height, self.width)
            m = pat.search(it["spike"].stem) if pat else None
            c = int(m.group(1)) - key_base if m else T // 2
            if not 0 <= c < T:
                raise SpikeFileError(f"{it['spike']}: GT frame {c} (from the name) is outside its {T} frames")
            if self.window is None:
                start, stop = 0, T
            else:
                start = c - self.window // 2
                stop = start + self.window
                if start < 0 or stop > T:
                    raise SpikeFileError(f"{it['spike']}: a {self.window}-frame window centred on frame {c} does not fit "
                                         f"in its {T} frames; use a smaller window")
            it.update(frames=T, centre=c, start=start, stop=stop)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        it = self.items[index]
        spikes = read_dat_frames(it["spike"], self.height, self.width, it["start"], it["stop"])
        clean = _load_target(it["gt"], self.color) if it["gt"] is not None else None
        if clean is not None and tuple(clean.shape[-2:]) != (self.height, self.width):
            raise ShapeError(f"{it['gt']}: size {tuple(clean.shape[-2:])} differs from the spikes' {self.height}x{self.width}")
        top, left, h, w, flip = self._crop(index, self.height, self.width)
        spikes = spikes[:, top: top + h, left: left + w]
        if clean is not None:
            clean = clean[:, top: top + h, left: left + w]
        if flip:
            spikes = spikes.flip(-1)
            clean = clean.flip(-1) if clean is not None else None
        meta = {"source": str(it["spike"]), "gt": str(it["gt"]) if it["gt"] else None, "index": index,
                "centre": it["centre"], "window": [it["start"], it["stop"]], "crop": [top, left, h, w], "flip": flip,
                "epoch": self.epoch, "seed": self.seed}
        return {"clean": clean.contiguous() if clean is not None else None, "blurry": None,
                "spikes": spikes.contiguous(), "meta": meta}


# --------------------------------------------------------------------------------------------
# STIR's SREDS


class SREDSDataset(_CropMixin):
    """STIR's SREDS folders: one ``.dat`` per REDS frame, grouped by scene.

    Layout (as read by STIR's ``sreds_train`` / ``sreds_test``)::

        root/crop_mini/spike/train/interp_20_alpha_0.40/SCENE/FRAME.dat   train: 96x96 crops
        root/crop_mini/image/train/train_orig/SCENE/FRAME.png
        root/spike/val/interp_20_alpha_0.40/SCENE/FRAME.dat               val/test: 720x1280
        root/imgs/val/val_orig/SCENE/FRAME.png

    Each file holds the spikes simulated around its frame. When a file has at least
    ``window`` frames, the window is centred in it (like Spk2ImgNet files). When files are
    shorter (chunks of ``interp`` frames between neighbouring REDS frames), a scene's files are
    read as one continuous stream, the GT frame of file ``k`` sits at frame ``key_offset`` of
    its chunk, and the ``window`` is cut around it from the neighbouring chunks (frames whose
    window would run past the scene's ends are skipped).

    Args:
        root: the SREDS folder.
        split: ``"train"`` or ``"val"`` / ``"test"`` (both the val folders).
        window: spike frames per sample (paper: 61).
        interp, alpha: the simulation settings in the folder name ``interp_{interp}_alpha_{alpha:.2f}``.
        spike_root, image_root: override the two folders (relative to ``root`` or absolute).
        key_offset: position of the GT frame inside its chunk (continuous-stream case).
        height, width, color, size, augment, seed: as :class:`SpikeFolderPairs`.
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        window: int = 61,
        *,
        interp: int = 20,
        alpha: float = 0.4,
        spike_root: PathLike | None = None,
        image_root: PathLike | None = None,
        key_offset: int = 0,
        height: int | None = None,
        width: int | None = None,
        color: bool = False,
        size: int | tuple[int, int] | None = None,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        root = Path(root)
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        sim = f"interp_{int(interp)}_alpha_{float(alpha):.2f}"
        if split == "train":
            sdef, idef = Path("crop_mini/spike/train") / sim, Path("crop_mini/image/train/train_orig")
        else:
            sdef, idef = Path("spike/val") / sim, Path("imgs/val/val_orig")
        self.spike_root = root / (spike_root if spike_root is not None else sdef)
        self.image_root = root / (image_root if image_root is not None else idef)
        for d in (self.spike_root, self.image_root):
            if not d.is_dir():
                raise SpikeFileError(f"{d}: missing (SREDS {split} layout, see docs/data.md)")
        if int(window) < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window, self.key_offset = int(window), int(key_offset)
        self.color, self.size, self.augment, self.seed = bool(color), as_size(size), bool(augment), int(seed)
        scenes = sorted([d for d in self.spike_root.iterdir() if d.is_dir()], key=natural_key)
        if not scenes:
            scenes = [self.spike_root]  # a flat folder of .dat files is one scene
        self.scenes: list[dict[str, Any]] = []
        self.samples: list[tuple[int, int]] = []
        hw: tuple[int, int] | None = (int(height), int(width)) if height and width else None
        for sc in scenes:
            files = sorted(sc.glob("*.dat"), key=natural_key)
            if not files:
                continue
            rel = sc.relative_to(self.spike_root)
            imgs = []
            for f in files:
                im = _find_image(self.image_root / rel, Path(f.stem))
                if im is None:
                    raise SpikeFileError(f"{f}: no ground-truth image {self.image_root / rel / f.stem}.png")
                imgs.append(im)
            if hw is None:
                hw = image_size(imgs[0])
            counts = [dat_frame_count(f, *hw) for f in files]
            offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()
            self.scenes.append({"dir": sc, "files": files, "images": imgs, "counts": counts, "offsets": offsets})
            si = len(self.scenes) - 1
            for k in range(len(files)):
                if counts[k] >= self.window:
                    self.samples.append((si, k))
                else:
                    c = offsets[k] + self.key_offset
                    start = c - self.window // 2
                    if start >= 0 and start + self.window <= offsets[-1]:
                        self.samples.append((si, k))
        if not self.scenes:
            raise SpikeFileError(f"{self.spike_root}: no .dat files")
        if not self.samples:
            raise SpikeFileError(f"{self.spike_root}: no frame has a full {self.window}-frame spike window")
        self.height, self.width = hw

    def __len__(self) -> int:
        return len(self.samples)

    def _window(self, sc: dict[str, Any], k: int) -> tuple[torch.Tensor, int, int]:
        H, W = self.height, self.width
        n = sc["counts"][k]
        if n >= self.window:
            c = n // 2
            start = c - self.window // 2
            return read_dat_frames(sc["files"][k], H, W, start, start + self.window), start, start + self.window
        offs = sc["offsets"]
        start = offs[k] + self.key_offset - self.window // 2
        stop = start + self.window
        parts = []
        for j, f in enumerate(sc["files"]):
            a, b = max(start, offs[j]), min(stop, offs[j + 1])
            if a < b:
                parts.append(read_dat_frames(f, H, W, a - offs[j], b - offs[j]))
        return torch.cat(parts, 0), start, stop

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        si, k = self.samples[index]
        sc = self.scenes[si]
        spikes, start, stop = self._window(sc, k)
        clean = _load_target(sc["images"][k], self.color)
        if tuple(clean.shape[-2:]) != (self.height, self.width):
            raise ShapeError(f"{sc['images'][k]}: size {tuple(clean.shape[-2:])} differs from the spikes' {self.height}x{self.width}")
        top, left, h, w, flip = self._crop(index, self.height, self.width)
        spikes, clean = spikes[:, top: top + h, left: left + w], clean[:, top: top + h, left: left + w]
        if flip:
            spikes, clean = spikes.flip(-1), clean.flip(-1)
        meta = {"source": str(sc["files"][k]), "gt": str(sc["images"][k]), "scene": sc["dir"].name, "index": index,
                "window": [start, stop], "crop": [top, left, h, w], "flip": flip, "epoch": self.epoch, "seed": self.seed}
        return {"clean": clean.contiguous(), "blurry": None, "spikes": spikes.contiguous(), "meta": meta}


# --------------------------------------------------------------------------------------------
# S-SDM's spike GOPRO


class GoproSpikeDataset(_CropMixin):
    """S-SDM's spike-GOPRO folders: blurry frame, sharp frame and the spikes of its exposure.

    Layout (``scripts/GOPRO_dataset.md`` of S-SDM)::

        root/{train,test}/blur_data/SEQUENCE/NAME.png     blurry frame (mean of 97 interpolated frames)
        root/{train,test}/sharp_data/SEQUENCE/NAME.png    the sharp middle frame
        root/{train,test}/spike_data/SEQUENCE/NAME.dat    spikes over the exposure (+20 frames each side),
                                                          at 1/4 of the image size (180x320 for 720x1280)
        root/{train,test}/spike_full/SEQUENCE/NAME.dat    (optional) spikes at full size

    Args:
        root, split: the GOPRO folder and ``"train"`` / ``"test"``.
        spike_dir: ``"spike_data"`` (quarter size) or ``"spike_full"``.
        spike_size: ``(h, w)`` of the spike frames; default: the image size divided by 4 for
            ``spike_data`` and by 1 for ``spike_full``, checked against the file size.
        spike_frames: keep this many spike frames centred in the stream (``None`` = all).
        match_size: upsample the spikes (nearest, as S-SDM) to the image size, so ``spikes`` is
            ``[T, H, W]`` like the images; ``False`` keeps them at their stored size.
        size, augment, seed: optional crop of the images (``size`` must be a multiple of the
            image/spike ratio; the crop is aligned to it so images and spikes stay registered).
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        *,
        spike_dir: str = "spike_data",
        blur_dir: str = "blur_data",
        sharp_dir: str = "sharp_data",
        spike_size: tuple[int, int] | None = None,
        spike_frames: int | None = None,
        match_size: bool = True,
        size: int | tuple[int, int] | None = None,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        base = Path(root) / split
        self.spike_root, self.blur_root, self.sharp_root = base / spike_dir, base / blur_dir, base / sharp_dir
        for d in (self.spike_root, self.blur_root):
            if not d.is_dir():
                raise SpikeFileError(f"{d}: missing (S-SDM GOPRO layout, see docs/data.md)")
        self.has_sharp = self.sharp_root.is_dir()
        if spike_frames is not None and int(spike_frames) < 1:
            raise ValueError(f"spike_frames must be >= 1, got {spike_frames}")
        self.spike_frames = int(spike_frames) if spike_frames is not None else None
        self.match_size, self.size, self.augment, self.seed = bool(match_size), as_size(size), bool(augment), int(seed)
        files = sorted(self.spike_root.rglob("*.dat"), key=natural_key)
        if not files:
            raise SpikeFileError(f"{self.spike_root}: no .dat files")
        self.items: list[dict[str, Any]] = []
        for f in files:
            rel = f.relative_to(self.spike_root).with_suffix("")
            blur = _find_image(self.blur_root, rel)
            if blur is None:
                raise SpikeFileError(f"{f}: no blurry image {self.blur_root / rel}.png")
            sharp = _find_image(self.sharp_root, rel) if self.has_sharp else None
            if self.has_sharp and sharp is None:
                raise SpikeFileError(f"{f}: no sharp image {self.sharp_root / rel}.png")
            self.items.append({"spike": f, "blur": blur, "sharp": sharp})
        self.height, self.width = image_size(self.items[0]["blur"])
        if spike_size is None:
            div = 1 if "full" in spike_dir else 4
            spike_size = (self.height // div, self.width // div)
        self.spike_h, self.spike_w = int(spike_size[0]), int(spike_size[1])
        if self.height % self.spike_h or self.width % self.spike_w or self.height // self.spike_h != self.width // self.spike_w:
            raise ShapeError(f"images {self.height}x{self.width} are not a whole multiple of the spikes {self.spike_h}x{self.spike_w}")
        self.ratio = self.height // self.spike_h
        if self.size is not None and (self.size[0] % self.ratio or self.size[1] % self.ratio):
            raise ShapeError(f"crop size {self.size} must be a multiple of {self.ratio} (images {self.height}x{self.width}, "
                             f"spikes {self.spike_h}x{self.spike_w})")
        for it in self.items:
            T = dat_frame_count(it["spike"], self.spike_h, self.spike_w)
            n = self.spike_frames or T
            if n > T:
                raise SpikeFileError(f"{it['spike']}: has {T} frames, fewer than spike_frames={n}")
            start = (T - n) // 2
            it.update(frames=T, start=start, stop=start + n)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        it = self.items[index]
        blurry = load_image(it["blur"])
        sharp = load_image(it["sharp"]) if it["sharp"] is not None else None
        if tuple(blurry.shape[-2:]) != (self.height, self.width):
            raise ShapeError(f"{it['blur']}: size {tuple(blurry.shape[-2:])}, expected {self.height}x{self.width} like the first image")
        spikes = read_dat_frames(it["spike"], self.spike_h, self.spike_w, it["start"], it["stop"])
        r = self.ratio
        top, left, h, w, flip = self._crop(index, self.height, self.width, align=r)
        blurry = blurry[:, top: top + h, left: left + w]
        sharp = sharp[:, top: top + h, left: left + w] if sharp is not None else None
        spikes = spikes[:, top // r: (top + h) // r, left // r: (left + w) // r]
        if self.match_size and r > 1:
            spikes = spikes.repeat_interleave(r, dim=-2).repeat_interleave(r, dim=-1)
        if flip:
            blurry, spikes = blurry.flip(-1), spikes.flip(-1)
            sharp = sharp.flip(-1) if sharp is not None else None
        meta = {"source": str(it["spike"]), "blur": str(it["blur"]), "sharp": str(it["sharp"]) if it["sharp"] else None,
                "index": index, "window": [it["start"], it["stop"]], "crop": [top, left, h, w], "flip": flip,
                "spike_scale": r, "epoch": self.epoch, "seed": self.seed}
        return {"clean": sharp.contiguous() if sharp is not None else None, "blurry": blurry.contiguous(),
                "spikes": spikes.contiguous(), "meta": meta}
