"""The shipped tiny weights: they load as the package default, each task has its own fine-tune,
and on the validation data they never saw they meet the targets their model card measures."""

from __future__ import annotations

import json

import pytest
import torch

from spikegen.models import SpikeGen
from spikegen.tasks.evaluate import evaluate_deblur
from spikegen.weights import default_vae, default_weights


@pytest.mark.parametrize("name", ["tiny", "deblur", "reconstruct", "tiny/deblur", "tiny/reconstruct"])
def test_shipped_weights_load_strictly_with_their_vae(name):
    from spikegen.weights import WEIGHTS_DIR

    path = WEIGHTS_DIR / name if "/" in name else default_weights(name)  # tiny/*: the f8 pair
    model = SpikeGen.from_pretrained(path)
    # clip_x0: the rule of docs/model.md ("Choosing clip_x0") for the set's latent; v1 keeps
    # the 3 it was measured with
    clip = 3.0 if path.name == "spikegen" else {"tiny": 3.5, "tiny-f4": 5.5}[path.parent.name]
    assert model.config.sample_temperature == 0.0 and model.config.sample_clip_x0 == clip
    assert model.config.tfp_scale == pytest.approx(1 / 0.6, abs=1e-3)
    assert model.config.spike_frames == 8 and model.dtype == torch.float32
    vae_cfg = json.loads((path.parent / "vae" / "config.json").read_text())  # the set's own VAE
    assert model.vae.config.scaling_factor == pytest.approx(vae_cfg["scaling_factor"])


def test_default_autoencoder_ceiling_meets_its_targets(shared_data):
    # issue #10's targets for the default autoencoder (weights/tiny-pca/vae), on images it never
    # saw: encode -> decode >= 28 dB RGB and >= 30 dB gray on mcmaster18's centre 256 crops, and
    # >= 30 dB on the REDS GT frames fed as 3 equal channels (measured 33.70 / 40.60 / 42.35)
    from spikegen.degrade import rgb_to_gray
    from spikegen.image import list_images, load_image
    from spikegen.metrics import psnr
    from spikegen.models.vae import decode_latents, encode_images, load_vae

    vae = load_vae(default_vae())
    assert default_vae().parent.name == "tiny-pca"

    def rt(x):
        with torch.no_grad():
            return decode_latents(vae, encode_images(vae, x[None]), size=tuple(x.shape[-2:]))[0]

    photos = []
    for f in list_images(shared_data / "images" / "mcmaster18"):
        x = load_image(f)
        h, w = x.shape[-2:]
        photos.append(x[:, (h - 256) // 2:(h - 256) // 2 + 256, (w - 256) // 2:(w - 256) // 2 + 256])
    assert len(photos) == 18
    rgb = [float(psnr(rt(x), x)) for x in photos]
    gray = [float(psnr(rgb_to_gray(rt(x)), rgb_to_gray(x))) for x in photos]
    reds = [load_image(f).expand(3, -1, -1) for f in list_images(shared_data / "spikes" / "synthetic_reds" / "gt")]
    r = [float(psnr(rgb_to_gray(rt(x)), rgb_to_gray(x))) for x in reds]
    assert len(reds) == 2
    assert sum(rgb) / 18 >= 28 and sum(gray) / 18 >= 30 and min(r) >= 30
    assert min(gray) >= 30  # every photo, not only the mean


def test_task_weights_are_their_own_fine_tunes():
    from spikegen.weights import task_weights

    d, r = task_weights("deblur"), task_weights("reconstruct")
    # both defaults come from the f4 set, beside the VAE they share
    assert d.name == "deblur" and r.name == "reconstruct" and d.parent == r.parent == default_vae("tiny-f4").parent
    a, b = (SpikeGen.from_pretrained(p).state_dict() for p in (d, r))
    own = [k for k in a if not k.startswith("vae.")]
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("vae."))  # one shared VAE
    assert not all(torch.equal(a[k], b[k]) for k in own)
    # the f8 set keeps its own pair of fine-tunes, both different from its v1
    f8 = [SpikeGen.from_pretrained(default_weights("tiny").parent / t).state_dict() for t in ("deblur", "reconstruct")]
    v1 = SpikeGen.from_pretrained(default_weights("tiny")).state_dict()
    for sd in f8:
        assert not all(torch.equal(sd[k], v1[k]) for k in sd if not k.startswith("vae."))


def test_shipped_deblur_weights_meet_their_targets_on_unseen_images(shared_data, tmp_path):
    # On the whole validation split (deterministic: seeded data, temperature 0), the task's
    # default weights (weights/tiny-f4/deblur): g = 0.5 at V_th = 1 is >= blurry + 4 dB and
    # TFP + 3.5 dB (gray), >= blurry + 3 dB in RGB (colour from the input); at V_th = 4 still
    # >= blurry + 1.2 dB and far above TFP; g = 0.5 beats g = 0 and g = 1 at both thresholds.
    # (Measured: 25.59 / 23.47 / 22.36 against blurry 20.94 gray, 20.23 RGB; MODEL_CARD.md.)
    res = evaluate_deblur(shared_data / "images" / "mcmaster18", tmp_path / "eval",
                          methods="blurry,tfp,spikegen-0,spikegen-0.5,spikegen-1", v_ths=[1.0, 4.0],
                          progress=False, report_images=0)
    assert res["weights"] == "shipped" and len(res["per_image"]) == 5 * 2 * 18
    s = {(r["method"], r["v_th"]): r for r in res["summary"]}
    blurry = s["blurry", 1.0]["psnr_gray"]
    assert s["spikegen-0.5", 1.0]["psnr_gray"] >= blurry + 4.0, s
    assert s["spikegen-0.5", 1.0]["psnr_gray"] >= s["tfp", 1.0]["psnr_gray"] + 3.5, s
    assert s["spikegen-0.5", 1.0]["psnr_rgb"] >= s["blurry", 1.0]["psnr_rgb"] + 3.0, s
    assert s["spikegen-0.5", 4.0]["psnr_gray"] >= blurry + 1.2, s
    assert s["spikegen-0.5", 4.0]["psnr_gray"] >= s["tfp", 4.0]["psnr_gray"] + 10.0, s
    for v in (1.0, 4.0):
        assert s["spikegen-0.5", v]["psnr_gray"] > max(s["spikegen-0", v]["psnr_gray"], s["spikegen-1", v]["psnr_gray"]), s


def test_shipped_reconstruct_weights_beat_the_f8_ones_and_tfp_on_both_streams(shared_data, tmp_path):
    # "TFP & Spike" on the 2 REDS streams with the reconstruction fine-tune (weights/tiny-f4/
    # reconstruct): above the f8 weights (22.23 dB) and above the 61-frame TFP (the input it
    # is given) on each stream. (Measured: 23.38, 23.72 / 23.03 against TFP 21.75 / 22.58.)
    from spikegen.tasks.evaluate import evaluate_reconstruct

    res = evaluate_reconstruct(shared_data / "spikes" / "synthetic_reds", tmp_path / "rec", progress=False,
                               report_images=0)
    s = {r["method"]: r for r in res["summary"]}
    assert res["weights"] == "shipped"
    assert s["spikegen"]["psnr"] >= 23.0, s
    per = {(r["image"], r["method"]): r["psnr"] for r in res["per_image"]}
    for image in {r["image"] for r in res["per_image"]}:
        assert per[image, "spikegen"] > per[image, "tfp"] + 0.3, per


def test_each_task_has_shipped_weights():
    from spikegen.weights import TASKS, default_weights, task_weights

    for task in TASKS:
        p = task_weights(task)
        assert (p / "config.json").is_file() and default_weights(task) == p
