"""Copy an exported SpikeGen fine-tune into the package as task weights sharing ``../vae``.

    python scripts/ship_weights.py RUN/final src/spikegen/weights/tiny-f4/deblur --fp16 --clip-x0 5.5 --tfp-scale 1.6667

Checks that the export's VAE is the weight set's ``vae/`` (the task weights share it: the same
bytes, or the same values where the set stores float16), copies ``model.safetensors``
(optionally as float16: it loads as float32), and writes ``config.json`` with
``"vae": "../vae"``, ``spike_frames`` (default 8), temperature 0 and ``sample_clip_x0``
(``--clip-x0``: what ``scripts/latent_clip.py`` prints for the set's VAE; 3.5 for ``tiny/vae``,
5.5 for ``tiny-f4/vae``), the shipped sampling settings.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
from pathlib import Path


def same_vae(a: Path, b: Path) -> bool:
    """The two VAE weight files are byte-identical, or hold the same tensors once the stored
    float16 set's are loaded as float32 (what an export of a model trained on it writes)."""
    if filecmp.cmp(a, b, shallow=False):
        return True
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(x[k].shape == y[k].shape and x[k].equal(y[k].to(x[k].dtype)) for k in x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="an exported SpikeGen folder (config.json, model.safetensors, vae/)")
    ap.add_argument("dst", type=Path, help="the task folder inside a weight set, e.g. src/spikegen/weights/tiny/deblur")
    ap.add_argument("--fp16", action="store_true", help="store the weights in float16")
    ap.add_argument("--spike-frames", type=int, default=8)
    ap.add_argument("--tfp-scale", type=float, default=None,
                    help="tfp_scale to store (firing rate -> intensity of the TFP pseudo-frame; the shipped sets: "
                         "1.6667, for streams made at gain 0.6); default: the export's")
    ap.add_argument("--tfp-window", type=int, default=None,
                    help="tfp_window to store (frames of the reconstruction pseudo-frame; tiny-pca/reconstruct: 21); "
                         "default: the export's")
    ap.add_argument("--tfp-min-spikes", type=float, default=None,
                    help="tfp_min_spikes to store (widen the pseudo-frame window until the mean pixel has fired this "
                         "often; tiny-pca/reconstruct: 2); default: the export's")
    ap.add_argument("--pseudo-tfi", default=None,
                    help="pseudo_tfi to store (the TFI's weight in the reconstruction pseudo-frame, a number or "
                         "'ivw'; tiny-pca/reconstruct: ivw); default: the export's")
    ap.add_argument("--g0-residual", type=float, default=None,
                    help="sample_g0_residual to store (the generated change at g = 0 scaled by this; "
                         "tiny-pca/deblur: see its MODEL_CARD); default: the export's")
    ap.add_argument("--clip-x0", type=float, required=True,
                    help="sample_clip_x0 to store (scripts/latent_clip.py VAE prints the rule's value)")
    args = ap.parse_args()
    vae = args.dst.parent / "vae" / "diffusion_pytorch_model.safetensors"
    if not same_vae(args.src / "vae" / vae.name, vae):
        raise SystemExit(f"{args.src / 'vae'} differs from {vae.parent}: the task weights must share the set's VAE")
    args.dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.src / "model.safetensors", args.dst / "model.safetensors")
    cfg = json.loads((args.src / "config.json").read_text())
    cfg.update(vae="../vae", spike_frames=args.spike_frames, sample_temperature=0.0, sample_clip_x0=args.clip_x0)
    if args.tfp_scale is not None:
        cfg.update(tfp_scale=args.tfp_scale)
    if args.tfp_window is not None:
        cfg.update(tfp_window=args.tfp_window)
    if args.tfp_min_spikes is not None:
        cfg.update(tfp_min_spikes=args.tfp_min_spikes)
    if args.pseudo_tfi is not None:
        cfg.update(pseudo_tfi=args.pseudo_tfi if args.pseudo_tfi == "ivw" else float(args.pseudo_tfi))
    if args.g0_residual is not None:
        cfg.update(sample_g0_residual=args.g0_residual)
    (args.dst / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    if args.fp16:
        from safetensors.torch import load_file, save_file

        st = load_file(str(args.dst / "model.safetensors"))
        save_file({k: v.half() if v.is_floating_point() else v for k, v in st.items()}, str(args.dst / "model.safetensors"))
    (args.dst / "model.safetensors").chmod(0o644)
    print(f"shipped {args.src} -> {args.dst}{' (float16)' if args.fp16 else ''}")


if __name__ == "__main__":
    main()
