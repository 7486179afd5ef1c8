"""Sampling from SpikeGen: one-step or MAR K-step generation, several samples with an uncertainty map.

:class:`SamplingMixin` gives :class:`~spikegen.models.SpikeGen` its :meth:`~SamplingMixin.sample`
and :meth:`~SamplingMixin.sample_latents`; what they need from the model is its public side:
``config``, ``device``, ``head``, ``proj_known``, ``encode_inputs`` (inputs -> encoder tokens),
``decode_tokens`` (encoder tokens + mask -> decoder tokens), ``unpatchify`` and
``decode_latents``.

Example:
    >>> import torch
    >>> from spikegen.models import SpikeGen
    >>> model = SpikeGen.from_config("tiny").eval()
    >>> lat, size = model.sample_latents(rgb=torch.rand(1, 3, 32, 48), steps=2, num_samples=2)
    >>> tuple(lat.shape), size
    ((2, 16, 8, 12), (32, 48))
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import torch

from spikegen.models.config import TOKEN_STRIDE
from spikegen.models.diffusion_head import SAMPLERS, SMALL_WORK_FOR_ONE_THREAD, cpu_threads
from spikegen.models.masking import cosine_mask_len, random_order

__all__ = ["SampleOutput", "SamplingMixin", "sample_masked", "auto_threads"]


class SampleOutput(NamedTuple):
    """What :meth:`SpikeGen.sample` returns when ``num_samples > 1``.

    Attributes:
        images: ``[B, 3, H, W]`` the first sample of each input.
        mean: ``[B, 3, H, W]`` per-pixel mean over the samples (the MMSE-style estimate).
        std: ``[B, 3, H, W]`` per-pixel standard deviation over the samples (unbiased): an
            uncertainty map.
        samples: ``[B, S, 3, H, W]`` all samples.
    """

    images: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    samples: torch.Tensor


def sample_masked(model: Any, enc: torch.Tensor, grid: tuple[int, int], k: int, generator: torch.Generator | None,
                  head_kwargs: dict) -> torch.Tensor:
    """MAR's K-step generation with the cosine masking schedule (MaskGIT / MAGE): each step
    decodes with the tokens generated so far and generates the next random share of the rest.

    Args:
        model: a SpikeGen trained with masking (``model.proj_known`` is not ``None``).
        enc: encoder tokens (``model.encode_inputs``); grid: their ``(h, w)``; k: the steps.
        generator: for the token order (and, through ``head_kwargs``, the head's noise).
        head_kwargs: the keyword arguments of ``model.head.sample``.

    Shape:
        Input: ``enc`` ``[B, N, D]`` with ``N = h * w``.
        Output: ``[B, N, C]`` generated tokens, ``C = config.token_channels``.
    """
    bb, n = enc.shape[:2]
    c = model.config.token_channels
    dev = enc.device
    order = random_order(bb, n, generator, dev)
    mask = torch.ones(bb, n, dtype=torch.bool, device=dev)
    tokens = torch.zeros(bb, n, c, device=dev, dtype=enc.dtype)
    for step in range(k):
        z = model.decode_tokens(enc, grid, mask, tokens)
        mask_len = cosine_mask_len(n, step, k, remaining=int(mask[0].sum()))
        if step == k - 1:
            to_pred = mask
            mask_next = torch.zeros_like(mask)
        else:
            mask_next = torch.zeros_like(mask)
            mask_next.scatter_(1, order[:, :mask_len], True)
            to_pred = mask & ~mask_next
        new = model.head.sample(z[to_pred], **head_kwargs)
        tokens = tokens.clone()
        tokens[to_pred] = new.to(tokens.dtype)
        mask = mask_next
    return tokens


def auto_threads(rgb: Any, spikes: Any, num_samples: int, *, head_width: int, device: torch.device) -> int | None:
    """One CPU thread for small sampling jobs (``tokens x head_width^2`` under
    ``SMALL_WORK_FOR_ONE_THREAD``, see :meth:`SpikeGen.sample`), else ``None`` (no change).

    Shape:
        Input: ``rgb`` ``[B, 3, H, W]`` / ``[3, H, W]`` or, when it is ``None``, ``spikes``
        ``[B, T, H, W]`` / ``[T, H, W]``: only their sizes are read.

    Example:
        >>> auto_threads(torch.zeros(1, 3, 256, 256), None, 1, head_width=128, device=torch.device("cpu"))
        1
    """
    if device.type != "cpu":
        return None
    ref = rgb if rgb is not None else spikes
    if not isinstance(ref, torch.Tensor) or ref.ndim < 3:
        return None
    b = ref.shape[0] if ref.ndim >= 4 else 1
    h, w = ref.shape[-2:]
    f = TOKEN_STRIDE
    tokens = b * num_samples * (-(-h // f)) * (-(-w // f))
    return 1 if tokens * head_width**2 < SMALL_WORK_FOR_ONE_THREAD else None


def _token_clip(clip: float | Sequence[float] | None, channels: int, patch: int) -> float | torch.Tensor | None:
    """A clip for token vectors ``[C * p * p]`` (``None``: no clamp): a number as it is, or one
    bound per latent channel laid out as :func:`~spikegen.models.inputs.patchify` lays out a
    token (``channel-major``: entry ``c * p * p + k`` belongs to channel ``c``)."""
    if clip is None:
        return None
    if isinstance(clip, (int, float)):
        return None if math.isinf(float(clip)) else float(clip)
    bounds = torch.as_tensor([float(v) for v in clip], dtype=torch.float32)
    if bounds.ndim != 1 or bounds.numel() != channels or not bool((bounds > 0).all()):
        raise ValueError(f"clip_x0: expected a number or {channels} positive per-channel bounds, got {list(clip)}")
    return bounds.repeat_interleave(patch * patch)


class SamplingMixin:
    """:meth:`sample` and :meth:`sample_latents` for :class:`~spikegen.models.SpikeGen` (see the
    module docstring for what they use of the model)."""

    @torch.inference_mode()
    def sample_latents(
        self,
        rgb: torch.Tensor | None = None,
        spikes: torch.Tensor | None = None,
        gamma: float | torch.Tensor = 0.5,
        steps: int | None = None,
        temperature: float | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        *,
        sampler: str | None = None,
        ar_steps: int = 1,
        tfp_rgb: bool | None = None,
        eta: float = 0.0,
        clip_x0: float | Sequence[float] | None = None,
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Sampled latents ``[B*num_samples, 16, p*h, p*w]`` (sample-minor order; ``h = ceil(H/8)``,
        ``p = config.patch_size``) and the image size ``(H, W)``.

        Same arguments as :meth:`sample`.

        Shape:
            Input: ``rgb`` ``[B, 3, H, W]``, ``spikes`` ``[B, T, H, W]`` (as :meth:`sample`).
            Output: ``[B*num_samples, 16, p*ceil(H/8), p*ceil(W/8)]`` scaled latents, and ``(H, W)``.
        """
        steps = self.config.sample_steps if steps is None else int(steps)
        temperature = self.config.sample_temperature if temperature is None else float(temperature)
        sampler = self.config.sampler if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(ar_steps) < 1:
            raise ValueError(f"ar_steps must be >= 1, got {ar_steps}")
        if ar_steps > 1 and self.proj_known is None:
            raise ValueError(
                "ar_steps > 1 needs a model trained for masked generation (config.mask_ratio_min < 1); "
                "this model generates all tokens in one step (ar_steps=1)"
            )
        enc, grid, (h, w), base = self._encode_inputs(rgb, spikes, gamma, tfp_rgb=tfp_rgb)
        b, s = enc.shape[0], int(num_samples)
        n, c = enc.shape[1], self.config.token_channels
        clip = _token_clip(self.config.sample_clip_x0 if clip_x0 is None else clip_x0, self.config.latent_channels,
                           self.config.patch_size)
        hs = dict(steps=steps, sampler=sampler, temperature=temperature, eta=eta, generator=generator, clip_x0=clip)
        if ar_steps == 1:
            z = self.decode_tokens(enc, grid)  # [B,N,D]
            z = z.repeat_interleave(s, dim=0) if s > 1 else z
            tokens = self.head.sample(z.reshape(-1, z.shape[-1]), **hs).reshape(b * s, n, c)
        else:
            tokens = sample_masked(self, enc.repeat_interleave(s, dim=0), grid, min(int(ar_steps), n), generator, hs)
        if base is not None:  # residual generation: input latent + the generated change
            g0 = float(getattr(self.config, "sample_g0_residual", 1.0))
            if g0 != 1.0:  # the change of g = 0 samples (RGB only) scaled
                f = torch.where(torch.as_tensor(gamma, dtype=torch.float32).flatten() == 0, g0, 1.0).expand(b)
                tokens = tokens * f.repeat_interleave(s).to(tokens.device, tokens.dtype).view(-1, 1, 1)
            tokens = tokens + (base.repeat_interleave(s, dim=0) if s > 1 else base).to(tokens.dtype)
        return self.unpatchify(tokens, grid), (h, w)

    @torch.inference_mode()
    def sample(
        self,
        rgb: torch.Tensor | None = None,
        spikes: torch.Tensor | None = None,
        gamma: float | torch.Tensor = 0.5,
        steps: int | None = None,
        temperature: float | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        *,
        sampler: str | None = None,
        ar_steps: int = 1,
        tfp_rgb: bool | None = None,
        eta: float = 0.0,
        clip_x0: float | Sequence[float] | None = None,
        decode_batch: int = 8,
        num_threads: int | str | None = "auto",
    ) -> torch.Tensor | SampleOutput:
        """Restore images from blurry RGB and/or spikes.

        Args:
            rgb: ``[B, 3, H, W]`` (or ``[3, H, W]``) images in [0, 1], or ``None``.
            spikes: ``[B, T, H, W]`` (or ``[T, H, W]``) spike streams, or ``None``.
            gamma: modality ratio in [0, 1] (float or ``[B]`` tensor): 0 = RGB only,
                1 = spikes only. Forced to 1 when ``rgb`` is missing (and no TFP) and to 0 when
                ``spikes`` is missing. At exactly 0 / 1 the other branch is not computed.
            steps: diffusion sampling steps (default ``config.sample_steps``; 100 for the paper
                presets, 25 for ``tiny``).
            temperature: noise temperature (1 = model distribution, 0 = deterministic; default
                ``config.sample_temperature``, 1.0 unless the weights' config says otherwise;
                with ``num_samples > 1`` a default of 0 becomes 1 so the samples differ).
            num_samples: samples per input; above 1 an uncertainty map is returned too.
            generator: ``torch.Generator`` for reproducible samples.
            sampler: ``"ddim"`` or ``"ddpm"`` (default ``config.sampler``).
            ar_steps: MAR generation steps K (1 = all tokens at once, the paper's default).
            tfp_rgb: use the spikes' TFP (mean over T, x ``config.tfp_scale``) as the RGB input
                when ``rgb`` is None ("TFP & Spike"); default ``config.tfp_rgb``.
            eta: DDIM stochasticity (0 = deterministic DDIM).
            clip_x0: clamp the head's clean-latent estimates to ``[-clip_x0, clip_x0]`` at every
                step (default ``config.sample_clip_x0``; ``float("inf")`` disables); a sequence
                of ``latent_channels`` numbers clamps each latent channel at its own bound.
            decode_batch: images per VAE decode call.
            num_threads: CPU intra-op threads for this call. ``"auto"`` (default) uses one
                thread when the job is small -- on the CPU, ``tokens x head_width^2 < 2^26``, e.g.
                the ``tiny`` preset on one 256x256 image -- and the current setting otherwise;
                an int forces a count; ``None`` keeps the current setting. (On 2 shared cores,
                two threads were 3-6x *slower* than one for the tiny model whenever other
                processes were running; see docs/model.md.)

        Returns:
            ``[B, 3, H, W]`` images in [0, 1] when ``num_samples == 1``; otherwise a
            :class:`SampleOutput` ``(images, mean, std, samples)``.

        Shape:
            Input: ``rgb`` ``[B, 3, H, W]``, ``spikes`` ``[B, T, H, W]``, ``gamma`` a float or ``[B]``.
            Output: ``[B, 3, H, W]``; with ``num_samples = S > 1`` the fields of :class:`SampleOutput`.

        Example:
            >>> from spikegen.models import SpikeGen
            >>> model = SpikeGen.from_config("tiny").eval()
            >>> out = model.sample(rgb=torch.rand(1, 3, 40, 48), steps=5, num_samples=3)
            >>> out.std.shape
            torch.Size([1, 3, 40, 48])
        """
        if num_threads == "auto":
            num_threads = auto_threads(rgb, spikes, int(num_samples), head_width=self.config.head_width, device=self.device)
        if temperature is None and int(num_samples) > 1 and self.config.sample_temperature == 0:
            temperature = 1.0  # deterministic samples would all be equal: an uncertainty map needs noise
        was_training = self.training
        self.eval()  # sampling never uses dropout
        try:
            with cpu_threads(num_threads):
                lat, size = self.sample_latents(
                    rgb, spikes, gamma, steps, temperature, num_samples, generator,
                    sampler=sampler, ar_steps=ar_steps, tfp_rgb=tfp_rgb, eta=eta, clip_x0=clip_x0,
                )
                imgs = torch.cat(
                    [self.decode_latents(lat[i : i + decode_batch], size) for i in range(0, lat.shape[0], decode_batch)]
                )
        finally:
            self.train(was_training)
        imgs = imgs.float()
        s = int(num_samples)
        if s == 1:
            return imgs
        samples = imgs.reshape(-1, s, *imgs.shape[1:])
        return SampleOutput(images=samples[:, 0], mean=samples.mean(dim=1), std=samples.std(dim=1), samples=samples)
