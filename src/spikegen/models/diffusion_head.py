"""Per-token diffusion head (MAR's "diffusion loss"): a small MLP with adaptive LayerNorm.

Every token of the backbone's output ``z`` (``[M, D]``, one row per latent token) conditions
a tiny denoiser that models the distribution of that token's clean latent (``[M, C]``,
``C`` = 16 VAE channels). As in MAR (Li et al. 2024):

* **Network** -- ``input_proj(x_t)`` goes through ``depth`` residual MLP blocks modulated by
  adaptive LayerNorm (shift, scale, gate from ``SiLU(t_emb + cond_embed(z))``), then a final
  adaLN + linear layer predicts the noise ``eps``. Modulations and the output layer start at
  zero (the DiT / MAR initialisation), so the untrained head predicts ``eps = 0``.
* **Training** -- epsilon-prediction MSE on the cosine schedule of 1000 steps
  (``alpha_bar(t) = cos((t/T + 0.008) / 1.008 * pi/2)^2``, betas capped at 0.999; the
  ``squaredcos_cap_v2`` schedule of diffusers), ``t`` uniform per token.
  Unlike MAR we predict only ``eps`` with a fixed variance (MAR also learns the variance
  through a VLB term); this is the loss the paper states.
* **Sampling** -- ``steps`` respaced timesteps evenly spread over ``[0, 999]`` (both ends
  included, as MAR's ``space_timesteps``), with either deterministic **DDIM** (``eta = 0``
  by default) or **ancestral DDPM** (posterior variance of the respaced chain, the
  "fixed small" variance). ``temperature`` scales the starting noise and every noise draw
  of the chain (MAR scales only the per-step noise; with DDIM that would make temperature a
  no-op). ``temperature = 0`` gives a deterministic sample.

A hand-written sampler is used instead of diffusers' ``DDIMScheduler``/``DDPMScheduler``:
those step one tensor at a time with Python-side bookkeeping and have no temperature; ours
runs all ``B*N`` tokens at once, computes the condition embedding once per sampling call and
the timestep embedding once per step. The schedule itself is checked against diffusers'
``squaredcos_cap_v2`` in the tests.

Example:
    >>> import torch
    >>> from spikegen.models.diffusion_head import DiffusionHead
    >>> head = DiffusionHead(latent_channels=16, cond_channels=64, width=128, depth=2)
    >>> z = torch.randn(10, 64)
    >>> loss = head.loss(torch.randn(10, 16), z)
    >>> head.sample(z, steps=10, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([10, 16])
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from spikegen.errors import ShapeError

__all__ = [
    "cosine_alphas_cumprod",
    "respaced_timesteps",
    "TimestepEmbedder",
    "AdaLNResBlock",
    "FinalLayer",
    "DiffusionMLP",
    "DiffusionHead",
    "SAMPLERS",
    "sample_loop",
]

SAMPLERS = ("ddim", "ddpm")


def cosine_alphas_cumprod(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cumulative ``alpha_bar`` of the improved-DDPM cosine schedule (float64, ``[num_steps]``).

    ``beta_t = min(1 - abar((t+1)/T) / abar(t/T), max_beta)`` with
    ``abar(u) = cos((u + s) / (1 + s) * pi / 2) ** 2``; identical to diffusers'
    ``beta_schedule="squaredcos_cap_v2"``.
    """
    u = torch.arange(num_steps + 1, dtype=torch.float64, device="cpu") / num_steps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, dim=0)


def respaced_timesteps(num_train_steps: int, steps: int) -> list[int]:
    """``steps`` training timesteps evenly spread over ``[0, num_train_steps - 1]`` (ascending).

    Both ends are included (as MAR's ``space_timesteps(1000, "100")``); ``steps=1`` gives the
    last timestep only.

    Example:
        >>> respaced_timesteps(1000, 4)
        [0, 333, 666, 999]
    """
    if not (1 <= int(steps) <= num_train_steps):
        raise ValueError(f"steps must be in [1, {num_train_steps}], got {steps}")
    steps = int(steps)
    if steps == 1:
        return [num_train_steps - 1]
    stride = (num_train_steps - 1) / (steps - 1)
    return [int(math.floor(i * stride + 0.5)) for i in range(steps)]


def _randn(shape, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normal noise drawn on the generator's device (so a CPU generator works for CUDA tensors)."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    g_dev = generator.device
    out = torch.randn(shape, generator=generator, device=g_dev, dtype=torch.float32)
    return out.to(device=device, dtype=dtype)


class cpu_threads:
    """Run a block with ``n`` intra-op CPU threads, restoring the previous count after."""

    def __init__(self, n: int | None):
        self.n = n
        self.prev: int | None = None

    def __enter__(self):
        if self.n is not None and self.n != torch.get_num_threads():
            self.prev = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.prev is not None:
            torch.set_num_threads(self.prev)
        return False


# per-step work (tokens x width^2) below which the CPU sampling loop runs on one thread: its
# many small matrix products lose more to thread synchronisation than they gain, and badly so
# on a busy machine (measured 5x slower with 2 threads on 2 shared cores)
SMALL_WORK_FOR_ONE_THREAD = 1 << 26


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    """Sinusoidal timestep features (256) -> ``Linear -> SiLU -> Linear`` to ``width``."""

    def __init__(self, width: int, freq_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def features(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        w = self.mlp[0].weight
        return self.mlp(self.features(t).to(w.dtype))


class AdaLNResBlock(nn.Module):
    """``x + gate * MLP(modulate(LN(x), shift, scale))`` with ``(shift, scale, gate)`` from the condition."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = nn.Linear(width, 3 * width)  # applied to SiLU(y)

    def forward(self, x: torch.Tensor, y_act: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(y_act).chunk(3, dim=-1)
        return x + gate * self.mlp(_modulate(self.norm(x), shift, scale))


class FinalLayer(nn.Module):
    """``Linear(modulate(LN(x), shift, scale))`` with a non-affine LayerNorm."""

    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(width, 2 * width)
        self.linear = nn.Linear(width, out_channels)

    def forward(self, x: torch.Tensor, y_act: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(y_act).chunk(2, dim=-1)
        return self.linear(_modulate(self.norm(x), shift, scale))


class DiffusionMLP(nn.Module):
    """The denoiser: ``eps = f(x_t, t, c)`` for ``[M, C]`` noisy tokens and ``[M, D]`` conditions."""

    def __init__(self, in_channels: int, cond_channels: int, width: int, depth: int):
        super().__init__()
        self.in_channels = in_channels
        self.input_proj = nn.Linear(in_channels, width)
        self.time_embed = TimestepEmbedder(width)
        self.cond_embed = nn.Linear(cond_channels, width)
        self.blocks = nn.ModuleList(AdaLNResBlock(width) for _ in range(depth))
        self.final = FinalLayer(width, in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.time_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_embed.mlp[2].weight, std=0.02)
        for blk in self.blocks:
            nn.init.zeros_(blk.ada.weight)
            nn.init.zeros_(blk.ada.bias)
        nn.init.zeros_(self.final.ada.weight)
        nn.init.zeros_(self.final.ada.bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    def forward_embedded(self, x: torch.Tensor, t_emb: torch.Tensor, c_emb: torch.Tensor) -> torch.Tensor:
        """The denoiser with precomputed embeddings (``t_emb`` ``[M or 1, W]``, ``c_emb`` ``[M, W]``)."""
        y_act = F.silu(c_emb + t_emb)
        h = self.input_proj(x)
        for blk in self.blocks:
            h = blk(h, y_act)
        return self.final(h, y_act)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(x, self.time_embed(t), self.cond_embed(c))


class DiffusionHead(nn.Module):
    """Per-token diffusion model over latent tokens, conditioned on backbone outputs.

    Args:
        latent_channels: ``C``, channels of one latent token (16).
        cond_channels: ``D``, width of the condition (the backbone's decoder width).
        width: MLP width (MAR-B: 1024, MAR-L: 1280).
        depth: number of adaLN residual blocks (MAR-B: 6, MAR-L: 8).
        num_train_steps: diffusion steps of the training schedule (1000).

    Shape:
        - ``loss(target [M, C], z [M, D], mask [M] or None) -> scalar``
        - ``sample(z [M, D]) -> [M, C]``
    """

    def __init__(self, latent_channels: int, cond_channels: int, width: int, depth: int, num_train_steps: int = 1000):
        super().__init__()
        self.latent_channels = latent_channels
        self.num_train_steps = num_train_steps
        self.net = DiffusionMLP(latent_channels, cond_channels, width, depth)
        # the schedule is a plain attribute (not a buffer): model.to(bfloat16) must not round it
        self._abar = cosine_alphas_cumprod(num_train_steps)
        self._abar_dev: dict = {}

    def alphas_cumprod(self, device: torch.device | None = None) -> torch.Tensor:
        """The float64 schedule (float32 on devices without float64, e.g. MPS)."""
        if device is None or torch.device(device).type == "cpu":
            return self._abar
        key = str(device)
        if key not in self._abar_dev:
            dt = torch.float32 if torch.device(device).type == "mps" else torch.float64
            self._abar_dev[key] = self._abar.to(device=device, dtype=dt)
        return self._abar_dev[key]

    def _check(self, z: torch.Tensor, target: torch.Tensor | None = None) -> None:
        if z.ndim != 2:
            raise ShapeError(f"z: expected [M, D] token conditions, got shape {tuple(z.shape)}")
        if target is not None and (target.ndim != 2 or target.shape != (z.shape[0], self.latent_channels)):
            raise ShapeError(
                f"target: expected [{z.shape[0]}, {self.latent_channels}] latent tokens, got shape {tuple(target.shape)}"
            )

    def loss(
        self,
        target: torch.Tensor,
        z: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        batch_mul: int = 1,
        generator: torch.Generator | None = None,
        return_x0: bool = False,
    ):
        """Epsilon-prediction MSE, averaged over channels, then over (masked) tokens.

        Args:
            target: ``[M, C]`` clean latent tokens.
            z: ``[M, D]`` conditions.
            mask: ``[M]`` weights (1 = token counts); ``None`` = all tokens.
            batch_mul: draw this many ``(t, noise)`` pairs per token (MAR's
                ``diffusion_batch_mul``, 4): cheap extra supervision for the small head.
            generator: for ``t`` and the noise.
            return_x0: also return the ``[M, C]`` clean-latent estimate of the first draw,
                ``(x_t - sqrt(1 - abar) * eps_hat) / sqrt(abar)`` (differentiable; noisy at large ``t``).

        Returns:
            The scalar loss, or ``(loss, x0_hat)`` with ``return_x0=True``.
        """
        self._check(z, target)
        m = target.shape[0]
        if batch_mul > 1:
            target = target.repeat(batch_mul, 1)
            z = z.repeat(batch_mul, 1)
            mask = mask.repeat(batch_mul) if mask is not None else None
        n = target.shape[0]
        dev = target.device
        if generator is None:
            t = torch.randint(0, self.num_train_steps, (n,), device=dev)
        else:
            t = torch.randint(0, self.num_train_steps, (n,), device=generator.device, generator=generator).to(dev)
        noise = _randn(target.shape, generator, dev, target.dtype)
        abar = self.alphas_cumprod(dev)[t]
        a = abar.sqrt().to(target.dtype)[:, None]
        b = (1 - abar).sqrt().to(target.dtype)[:, None]
        x_t = a * target + b * noise
        eps = self.net(x_t, t, z)
        per_token = ((eps.float() - noise.float()) ** 2).mean(dim=-1)
        if mask is None:
            loss = per_token.mean()
        else:
            mask = mask.to(per_token.dtype)
            loss = (per_token * mask).sum() / mask.sum().clamp_min(1.0)
        if not return_x0:
            return loss
        x0 = ((x_t[:m] - b[:m] * eps[:m]) / a[:m]).to(target.dtype)
        return loss, x0

    def sample(
        self,
        z: torch.Tensor,
        *,
        steps: int = 100,
        sampler: str = "ddim",
        temperature: float = 1.0,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        clip_x0: float | torch.Tensor | None = None,
        num_threads: int | str | None = "auto",
    ) -> torch.Tensor:
        """Draw one clean latent token per condition row.

        Args:
            z: ``[M, D]`` conditions.
            steps: number of respaced steps (1..1000).
            sampler: ``"ddim"`` (deterministic given the starting noise when ``eta = 0``) or
                ``"ddpm"`` (ancestral, posterior variance).
            temperature: scales the starting noise and every injected noise (1 = the model's
                distribution, 0 = deterministic).
            eta: DDIM's stochasticity (0 = DDIM, 1 = DDPM-like); ignored by ``"ddpm"``.
            generator: random generator for all noise draws (reproducible samples).
            clip_x0: clamp every clean-latent estimate to ``[-clip_x0, clip_x0]`` ("static
                thresholding"); a ``[D]`` tensor bounds each token entry on its own. ``None``
                (MAR's behaviour) trusts the network; see the note in :func:`sample_loop` on why
                a briefly trained head may need it.
            num_threads: CPU threads for the loop: ``"auto"`` uses one thread when the per-step
                work is small (``M * width^2 < 2^26``, e.g. the ``tiny`` preset on one image)
                and the current setting otherwise; ``None`` keeps the current setting.

        Returns:
            ``[M, C]`` sampled latent tokens (in ``z``'s dtype).
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if not (temperature >= 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        self._check(z)
        ts = respaced_timesteps(self.num_train_steps, steps)
        net = self.net
        if num_threads == "auto":
            width = net.input_proj.out_features
            small = z.device.type == "cpu" and z.shape[0] * width * width < SMALL_WORK_FOR_ONE_THREAD
            num_threads = 1 if small else None
        with cpu_threads(num_threads):
            if next(net.parameters()).dtype == torch.float32 and (
                    z.dtype != torch.float32 or torch.is_autocast_enabled(z.device.type)):
                # Under bf16/fp16 autocast the first DDIM step divides a rounded noise estimate by
                # sqrt(alpha_bar) ~ 5e-5; the small head's loop runs in float32 instead (32 ->
                # 55+ dB agreement with a float32 sample without clip_x0).
                with torch.autocast(z.device.type, enabled=False):
                    return self._sample(z.float(), ts, sampler, temperature, eta, generator, clip_x0).to(z.dtype)
            return self._sample(z, ts, sampler, temperature, eta, generator, clip_x0)

    def _sample(self, z, ts, sampler, temperature, eta, generator, clip_x0) -> torch.Tensor:
        net = self.net
        c_emb = net.cond_embed(z)
        t_embs = net.time_embed(torch.tensor(ts, device=z.device))  # [steps, W], once per call

        def eps_fn(x: torch.Tensor, i: int) -> torch.Tensor:
            return net.forward_embedded(x, t_embs[i : i + 1], c_emb)

        return sample_loop(
            eps_fn, (z.shape[0], self.latent_channels), ts, self.alphas_cumprod().tolist(),
            sampler=sampler, temperature=temperature, eta=eta, generator=generator, device=z.device, dtype=z.dtype,
            clip_x0=clip_x0,
        )


def sample_loop(
    eps_fn,
    shape: tuple[int, ...],
    timesteps: list[int],
    alphas_cumprod: list[float],
    *,
    sampler: str = "ddim",
    temperature: float = 1.0,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    clip_x0: float | None = None,
) -> torch.Tensor:
    """The respaced DDIM / ancestral-DDPM loop for any noise predictor.

    Args:
        eps_fn: ``eps_fn(x_t, i) -> eps`` where ``i`` indexes ``timesteps``.
        shape: shape of the sample.
        timesteps: ascending training timesteps to visit (from :func:`respaced_timesteps`).
        alphas_cumprod: the training schedule's ``alpha_bar`` as a list of floats.
        sampler, temperature, eta, generator, clip_x0: as :meth:`DiffusionHead.sample`.

    Returns:
        The clean sample ``x_0``.

    Note:
        The capped cosine schedule ends at ``alpha_bar[999] ~ 2.4e-9``, so the first step turns
        the noise prediction into ``x_0 = (x - sqrt(1 - abar) eps) / sqrt(abar)``, amplifying any
        error in ``eps`` by ~2e4. A well-trained head predicts ``eps ~ x_t`` there almost exactly
        (MAR relies on this); a briefly trained one does not, and its samples blow up unless
        ``clip_x0`` bounds the estimate (latents are scaled to unit variance, so 5-10 is safe).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    ts = timesteps
    x = _randn(shape, generator, torch.device(device), dtype) * temperature
    for i in range(len(ts) - 1, -1, -1):
        ab_t = alphas_cumprod[ts[i]]
        ab_prev = alphas_cumprod[ts[i - 1]] if i > 0 else 1.0
        eps = eps_fn(x, i)
        x0 = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
        if clip_x0 is not None:
            if isinstance(clip_x0, torch.Tensor):  # per token entry (one bound per latent channel)
                c = clip_x0.to(x0.device, x0.dtype)
                x0 = torch.maximum(torch.minimum(x0, c), -c)
            else:
                x0 = x0.clamp(-clip_x0, clip_x0)
        if i == 0:
            return x0
        if sampler == "ddim":
            sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))
            x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
            if sigma > 0 and temperature > 0:
                x = x + (sigma * temperature) * _randn(x.shape, generator, x.device, x.dtype)
        else:
            beta = 1 - ab_t / ab_prev
            c0 = math.sqrt(ab_prev) * beta / (1 - ab_t)
            ct = math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab_t)
            x = c0 * x0 + ct * x
            if temperature > 0:
                std = math.sqrt(beta * (1 - ab_prev) / (1 - ab_t))
                x = x + (std * temperature) * _randn(x.shape, generator, x.device, x.dtype)
    return x
