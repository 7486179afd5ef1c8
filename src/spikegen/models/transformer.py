"""Pre-norm ViT blocks with 2-D rotary position embedding (RoPE) over the token grid.

Written here because timm is not available. A block is the standard pre-norm transformer
block (as ``timm.models.vision_transformer.Block``)::

    x = x + Attention(LayerNorm(x))     # multi-head, qkv bias, F.scaled_dot_product_attention
    x = x + MLP(LayerNorm(x))           # Linear -> GELU -> Linear, hidden = 4 x width

with LayerNorm eps 1e-6. Position enters only through **2-D RoPE** applied to queries and keys
in every attention layer: the first half of each head's channels is rotated by the token's
row index, the second half by its column index, with frequencies ``base ** (-2i / (d/2))``
(base 10000, ``d`` the head dim). So any grid ``(h, w)`` works without interpolating a table,
and the attention score depends only on relative offsets. The cos/sin tables are cached per
grid size, device and dtype.

(The official SpikeGen release instead rotated the *token embeddings* once, over a 1-D index,
with a formula that is not a rotation; see ``docs/model.md``.)

Example:
    >>> import torch
    >>> from spikegen.models.transformer import Transformer
    >>> net = Transformer(width=64, depth=2, num_heads=4)
    >>> x = torch.randn(2, 7 * 9, 64)
    >>> net(x, grid=(7, 9)).shape
    torch.Size([2, 63, 64])
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from spikegen.errors import ShapeError

__all__ = ["RoPE2D", "Attention", "Mlp", "Block", "Transformer", "apply_rope_2d"]


class RoPE2D(nn.Module):
    """2-D rotary position embedding tables for a ``(h, w)`` token grid (row-major tokens).

    Args:
        head_dim: channels per attention head; must be divisible by 4 (two axes x pairs).
        base: the RoPE base (10000).
        cache_size: how many grid sizes to keep cached.

    ``forward(grid, device, dtype)`` returns ``(cos, sin)`` of shape ``[h*w, 2, head_dim/4]``
    (axis 0 = rows, axis 1 = columns).

    Example:
        >>> cos, sin = RoPE2D(32)((3, 5), torch.device("cpu"), torch.float32)
        >>> cos.shape
        torch.Size([15, 2, 8])
    """

    def __init__(self, head_dim: int, base: float = 10000.0, cache_size: int = 8):
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"2-D RoPE needs a head dim divisible by 4, got {head_dim}")
        self.head_dim = head_dim
        self.base = float(base)
        self.cache_size = cache_size
        self._cache: OrderedDict = OrderedDict()

    def forward(self, grid: tuple[int, int], device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (int(grid[0]), int(grid[1]), str(device), dtype)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        h, w = key[0], key[1]
        half = self.head_dim // 2
        # built outside inference mode so the cached tables can also be used for training
        with torch.inference_mode(False), torch.no_grad():
            inv_freq = self.base ** (-torch.arange(0, half, 2, dtype=torch.float32, device=device) / half)
            rows = torch.arange(h, dtype=torch.float32, device=device).repeat_interleave(w)
            cols = torch.arange(w, dtype=torch.float32, device=device).repeat(h)
            ang = torch.stack([rows[:, None] * inv_freq, cols[:, None] * inv_freq], dim=1)  # [N, 2, d/4]
            out = (ang.cos().to(dtype), ang.sin().to(dtype))
        self._cache[key] = out
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out


def apply_rope_2d(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, heads, N, d]`` by the 2-D RoPE tables ``[N, 2, d/4]``.

    Channels ``[0, d/2)`` are rotated by the row angle and ``[d/2, d)`` by the column angle;
    inside each half, channel ``i`` pairs with ``i + d/4`` (the "rotate half" convention).
    """
    b, nh, n, d = x.shape
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    xr = x.reshape(b, nh, n, 2, 2, d // 4)  # axis, half, freq
    x1, x2 = xr[..., 0, :], xr[..., 1, :]  # [B, heads, N, 2, d/4]
    out = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-2)
    return out.reshape(b, nh, n, d)


class Attention(nn.Module):
    """Multi-head self-attention with qkv bias and 2-D RoPE on queries and keys."""

    def __init__(self, width: int, num_heads: int, *, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if rope is not None:
            q = apply_rope_2d(q, *rope)
            k = apply_rope_2d(k, *rope)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """``Linear -> GELU -> Linear`` with hidden width ``mlp_ratio * width``."""

    def __init__(self, width: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(
        self,
        width: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=norm_eps)
        self.attn = Attention(width, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.norm2 = nn.LayerNorm(width, eps=norm_eps)
        self.mlp = Mlp(width, int(width * mlp_ratio), drop=proj_drop)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """A stack of :class:`Block` with 2-D RoPE and a final LayerNorm.

    Args:
        width: token width.
        depth: number of blocks.
        num_heads: attention heads (``width / num_heads`` must be divisible by 4).
        mlp_ratio: MLP hidden width / width (4).
        qkv_bias: bias on the qkv projection (True).
        norm_eps: LayerNorm epsilon (1e-6).
        rope_base: RoPE base (10000).
        attn_drop, proj_drop: dropout rates (MAR uses 0.1 for both).
        grad_checkpointing: recompute blocks in the backward pass to save memory.

    Shape:
        - Input: ``[B, h*w, width]`` tokens in row-major grid order, and ``grid=(h, w)``.
        - Output: ``[B, h*w, width]``.

    Example:
        >>> net = Transformer(32, 1, 2)
        >>> net(torch.randn(1, 12, 32), grid=(3, 4)).shape
        torch.Size([1, 12, 32])
    """

    def __init__(
        self,
        width: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        rope_base: float = 10000.0,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        self.width = width
        self.rope = RoPE2D(width // num_heads, base=rope_base)
        self.blocks = nn.ModuleList(
            Block(width, num_heads, mlp_ratio, qkv_bias=qkv_bias, norm_eps=norm_eps, attn_drop=attn_drop, proj_drop=proj_drop)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width, eps=norm_eps)
        self.grad_checkpointing = grad_checkpointing

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.width or x.shape[1] != grid[0] * grid[1]:
            raise ShapeError(f"tokens: expected [B, {grid[0]}*{grid[1]}, {self.width}], got shape {tuple(x.shape)}")
        rope = self.rope(grid, x.device, x.dtype)
        for blk in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(blk, x, rope, use_reentrant=False)
            else:
                x = blk(x, rope)
        return self.norm(x)
