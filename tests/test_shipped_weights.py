"""The shipped tiny weights: they load as the package default, each task has its own fine-tune,
and on the validation data they never saw they meet the targets their model card measures."""

from __future__ import annotations

import json

import pytest
import torch

from spikegen.models import SpikeGen
from spikegen.tasks.evaluate import evaluate_deblur
from spikegen.weights import default_vae, default_weights


@pytest.mark.parametrize("name", ["tiny", "deblur", "reconstruct", "tiny-f4/deblur", "tiny-f4/reconstruct",
                                  "tiny/deblur", "tiny/reconstruct"])
def test_shipped_weights_load_strictly_with_their_vae(name):
    from spikegen.weights import WEIGHTS_DIR

    path = WEIGHTS_DIR / name if "/" in name else default_weights(name)  # tiny/*: the f8 pair
    model = SpikeGen.from_pretrained(path)
    # clip_x0: the rule of docs/model.md ("Choosing clip_x0") for the set's latent (v1 keeps
    # the 3 it was measured with); the residual tiny-pca pair: the residual's rule (deblur) and
    # the best of the training-pair sweep (reconstruct), docs/model.md ("Residual generation")
    clips = {"tiny": 3.5, "tiny-f4": 5.5, "tiny-pca/deblur": 4.5, "tiny-pca/reconstruct": 2.5}
    clip = 3.0 if path.name == "spikegen" else clips.get(path.parent.name, clips.get(f"{path.parent.name}/{path.name}"))
    assert model.config.sample_temperature == 0.0 and model.config.sample_clip_x0 == clip
    pca = path.parent.name == "tiny-pca"
    assert model.config.residual == pca
    recon = pca and path.name == "reconstruct"
    assert (model.config.tfp_window, model.config.tfp_min_spikes) == ((21, 2.0) if recon else (0, 0.0))
    assert model.config.pseudo_tfi == ("ivw" if recon else 0.0)
    assert model.config.sample_g0_residual == (0.25 if pca and path.name == "deblur" else 1.0)
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
    # both defaults come from the PCA set, beside the VAE they share (the default VAE)
    assert d.name == "deblur" and r.name == "reconstruct" and d.parent == r.parent == default_vae().parent
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
    # default weights (weights/tiny-pca/deblur): g = 0.5 at V_th = 1 is >= blurry + 5 dB and
    # TFP + 4.5 dB (gray), >= blurry + 3.5 dB in RGB (colour from the input); at V_th = 4 still
    # >= blurry + 2 dB and far above TFP; g = 0.5 beats g = 0 and g = 1 at both thresholds; g = 0
    # (RGB only, its change scaled by sample_g0_residual 0.25) is within 0.1 dB of the blurry
    # input. (Measured: 26.43 / 24.08 / 23.06 and g = 0 20.92 against blurry 20.94 gray, 20.23
    # RGB; 20.40 with the unscaled change; MODEL_CARD.md.)
    res = evaluate_deblur(shared_data / "images" / "mcmaster18", tmp_path / "eval",
                          methods="blurry,tfp,spikegen-0,spikegen-0.5,spikegen-1", v_ths=[1.0, 4.0],
                          progress=False, report_images=0)
    assert res["weights"] == "shipped" and len(res["per_image"]) == 5 * 2 * 18
    s = {(r["method"], r["v_th"]): r for r in res["summary"]}
    blurry = s["blurry", 1.0]["psnr_gray"]
    assert s["spikegen-0.5", 1.0]["psnr_gray"] >= blurry + 5.0, s
    assert s["spikegen-0.5", 1.0]["psnr_gray"] >= s["tfp", 1.0]["psnr_gray"] + 4.5, s
    assert s["spikegen-0.5", 1.0]["psnr_rgb"] >= s["blurry", 1.0]["psnr_rgb"] + 3.5, s
    assert s["spikegen-0.5", 4.0]["psnr_gray"] >= blurry + 2.0, s
    assert s["spikegen-0.5", 4.0]["psnr_gray"] >= s["tfp", 4.0]["psnr_gray"] + 10.0, s
    assert s["spikegen-0", 1.0]["psnr_gray"] >= blurry - 0.1, s
    for v in (1.0, 4.0):
        assert s["spikegen-0.5", v]["psnr_gray"] > max(s["spikegen-0", v]["psnr_gray"], s["spikegen-1", v]["psnr_gray"]), s


def test_shipped_reconstruct_weights_beat_tfp_at_its_best_window_and_tfi(shared_data, tmp_path):
    # "TFP & Spike" on the 2 REDS streams with the reconstruction fine-tune (weights/tiny-pca/
    # reconstruct, its pseudo-frame the inverse-variance blend of the 21-frame TFP and the TFI):
    # issue #15's +2 dB over the better of TFI and TFP at its best window (21 frames), far above
    # the protocol's 61-frame TFP, and above its own classic input, the blend. (Measured: 28.45
    # against TFI 25.49, TFP-21 25.65, TFP-61 22.16, blend 28.15; SSIM and LPIPS the best too.)
    from spikegen.tasks.evaluate import evaluate_reconstruct

    data = shared_data / "spikes" / "synthetic_reds"
    res = evaluate_reconstruct(data, tmp_path / "rec", progress=False, report_images=0)
    s = {r["method"]: r for r in res["summary"]}
    assert res["weights"] == "shipped" and res["protocol"]["spikegen_tfp_window"] == [21, 21]
    best_tfp = evaluate_reconstruct(data, tmp_path / "tfp21", methods="tfp", window=21, progress=False,
                                    report_images=0)["summary"][0]["psnr"]
    assert s["spikegen"]["psnr"] >= max(best_tfp, s["tfi"]["psnr"]) + 2.0, (s, best_tfp)
    assert s["spikegen"]["psnr"] >= s["tfp"]["psnr"] + 3.0, s
    assert s["spikegen"]["psnr"] >= s["blend"]["psnr"] + 0.15, s
    assert s["spikegen"]["ssim"] > max(s[m]["ssim"] for m in ("tfp", "tfi", "blend")), s
    assert s["spikegen"]["lpips"] < min(s[m]["lpips"] for m in ("tfp", "tfi", "blend")), s


def test_shipped_reconstruct_weights_score_best_on_the_real_capture(shared_data, tmp_path):
    # No-reference scores of the real capture (mean rate 0.031: the pseudo-frame widens to all
    # 61 frames): SpikeGen has the best NIQE and the best BRISQUE of all rows.
    # (Measured: NIQE 2.77 / BRISQUE 15.21 against TFI 10.91 / 48.11, the TFP/TFI blend
    # 10.85 / 48.29 and TFP 29.14 / 61.21.)
    from spikegen.tasks.evaluate import evaluate_real

    res = evaluate_real(shared_data / "spikes" / "real", tmp_path / "real", progress=False, report_images=0)
    s = {r["method"]: r for r in res["summary"]}
    assert res["protocol"]["spikegen_tfp_window"] == [61, 61, 61]
    for k in ("niqe", "brisque"):
        assert s["spikegen"][k] < min(s["tfp"][k], s["tfi"][k], s["blend"][k]), s


def test_each_task_has_shipped_weights():
    from spikegen.weights import TASKS, default_weights, task_weights

    for task in TASKS:
        p = task_weights(task)
        assert (p / "config.json").is_file() and default_weights(task) == p
