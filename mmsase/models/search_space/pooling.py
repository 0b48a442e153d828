"""Parameter-free spatial and channel poolings of the squeeze ops, and GSoP's channel count.

* :func:`pool_channels` — adaptive average pooling of the channel axis (and optionally of the
  spatial axes), any ``C ≥ 1``;
* :func:`grid_pool` — adaptive average pooling to a ``size × size`` grid, with fast paths;
* :func:`bilinear_resize` — bilinear up-sampling as two matrix products (the spatial ``gsop``);
* :func:`gsop_groups` — the channels left after GSoP's pooling by 4.
"""
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def pool_channels(x: Tensor, groups: int, size: Optional[Tuple[int, int]] = None) -> Tensor:
    """Adaptive average pooling of the channel axis to ``groups`` channels (no parameters),
    and optionally of the spatial axes to ``size``: ``(B, C, H, W) → (B, groups, *size)``.

    When ``C`` is a multiple of ``groups`` the windows do not overlap; otherwise they follow
    :func:`torch.nn.functional.adaptive_avg_pool3d` (window ``i`` covers channels
    ``floor(i·C/g) … ceil((i+1)·C/g) − 1``), so any ``C ≥ 1`` works.
    """
    b, c, h, w = x.shape
    if size is None and c % groups == 0:
        return x.view(b, groups, c // groups, h, w).mean(2)
    out_hw = (h, w) if size is None else tuple(size)
    return F.adaptive_avg_pool3d(x.unsqueeze(1), (groups, *out_hw)).squeeze(1)


def grid_pool(x: Tensor, size: int) -> Tensor:
    """``F.adaptive_avg_pool2d(x, size)``, with the common cases done faster: a map already
    ``size × size`` is returned as is, and sides divisible by ``size`` are averaged in blocks
    (CPU adaptive pooling of many small channels is several times slower than either)."""
    b, c, h, w = x.shape
    if h == size and w == size:
        return x
    if h % size == 0 and w % size == 0:
        return _BlockMean.apply(x, size)
    return F.adaptive_avg_pool2d(x, size)


class _BlockMean(torch.autograd.Function):
    """Means of the ``(H/s) × (W/s)`` blocks of ``x (B, C, H, W)`` → ``(B, C, s, s)``: two
    contiguous reductions forward (faster than ``avg_pool2d``, and than one over two axes);
    backward one broadcast copy (autograd of the two means writes two full-size tensors)."""

    @staticmethod
    def forward(ctx, x, size):
        b, c, h, w = x.shape
        ctx.shape = x.shape
        rows = x.view(b, c, size, h // size, w).mean(3)
        return rows.view(b, c, size, size, w // size).mean(4)

    @staticmethod
    def backward(ctx, g):
        b, c, h, w = ctx.shape
        s = g.shape[-1]
        kh, kw = h // s, w // s
        spread = (g / (kh * kw)).view(b, c, s, 1, s, 1).expand(b, c, s, kh, s, kw)
        return spread.reshape(b, c, h, w), None


@lru_cache(maxsize=32)
def _linear_resize_matrix(n_in: int, n_out: int, dtype: torch.dtype,
                          device: torch.device) -> Tensor:
    """``(n_out, n_in)``: 1-D linear resampling (``align_corners=False``) as a matrix, built
    by resampling the identity with ``F.interpolate`` (so it has the same weights)."""
    eye = torch.eye(n_in, dtype=dtype, device=device)[:, None, :]
    with torch.no_grad():
        rows = F.interpolate(eye, size=n_out, mode='linear', align_corners=False)
    return rows[:, 0, :].t().contiguous()


def bilinear_resize(x: Tensor, size: Tuple[int, int]) -> Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=False)`` for ``(B, C, h, w)``
    as two matrix products ``U_H x U_Wᵀ`` (bilinear resampling is separable): the same values
    up to rounding, and for the small grids of the spatial ``gsop`` ~10× faster than the CPU
    resampling kernel, forward and backward."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    rows = _linear_resize_matrix(h, size[0], x.dtype, x.device)
    cols = _linear_resize_matrix(w, size[1], x.dtype, x.device)
    return torch.matmul(torch.matmul(rows, x), cols.t())


def gsop_groups(channels: int) -> int:
    """Channels left after GSoP's pooling by 4: ``max(1, C // 4)``."""
    return max(1, channels // 4)
