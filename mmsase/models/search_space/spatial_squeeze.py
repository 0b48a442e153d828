"""Spatial-squeeze set (spec §2): ``(B, C, H, W) → (B, 1, H, W)``, statistics over C.

The channel-squeeze set with the roles of the axes swapped.

| name       | operation                                                   | params   |
|------------|-------------------------------------------------------------|----------|
| `gap`      | mean over C                                                 | 0        |
| `gsop`     | pool to 8×8 and C/4, covariance of the 64 positions,        | 4096 + 2 |
|            | row-wise conv, bilinear up-sampling, 1×1 conv               |          |
| `std_l2`   | instance norm with per-channel affine, L2 over C / √C       | 2C       |
| `l4`       | ``(mean_c x⁴ + 1e-6)^(1/4)``                                | 0        |
| `gap_gmp`  | mean and max over C, fused                                  | 5        |
| `gap_std`  | mean and std over C, fused                                  | 5        |
| `gap_skew` | mean and skewness over C, fused                             | 5        |

Every op accepts a tensor or a :class:`~mmsase.models.search_space.statistics.FeatureStats`;
``gap`` and ``l4`` of ``FeatureStats(x, channel_scale=m)`` never materialise ``x ⊙ m``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .pooling import bilinear_resize, gsop_groups, pool_channels
from .squeeze import (GAPGMPSqueeze, GAPSkewSqueeze, GAPSqueeze, GAPStdSqueeze, L4Squeeze,
                      SqueezeOp)
from .statistics import L2_EPS, STD_EPS, FeatureStats, param


class SpatialGAP(GAPSqueeze):
    """``gap``: ``mean_c x`` → ``(B, 1, H, W)``."""
    axis = 'channel'


class SpatialGSoP(SqueezeOp):
    """``gsop``: second-order pooling between positions → ``(B, 1, H, W)``.

    **Decision** (spec §2): adaptive average pooling of the map to 8×8 and of the channels to
    ``d = max(1, C // 4)`` (one pooling pass) → covariance between the 64 positions over the
    ``d`` channels ``(B, 64, 64)`` → row-wise conv (depthwise, kernel ``(64, 1)``, no bias, as
    the channel ``gsop``) → 64 values → ``(B, 1, 8, 8)`` → bilinear up-sampling to ``H×W`` →
    1×1 conv ``1 → 1`` with bias. With ``C < 8`` (``d = 1``) the covariance is zero and the
    output is the constant bias.
    """
    axis = 'channel'
    #: side of the pooled grid whose positions are correlated.
    grid = 8

    def __init__(self, channels: int):
        super().__init__(channels)
        self.groups = gsop_groups(channels)
        n = self.grid * self.grid
        self.row_conv = nn.Conv2d(n, n, kernel_size=(n, 1), groups=n, bias=False)
        self.proj = nn.Conv2d(1, 1, kernel_size=1, bias=True)

    def statistics(self, stats: FeatureStats) -> Tensor:
        b, _, h, w = stats.shape
        g = self.grid
        # Pooling is separable: the grid per channel (shared with the other squeeze edge of
        # the block, scaled by m for x ⊙ m), then the channel groups.
        f = pool_channels(stats.grid_pool(g), self.groups).flatten(2)  # (B, d, 64)
        f = f - f.mean(1, keepdim=True)
        # The row-wise conv of the covariance cov = fᵀf / d (B, 64, 64) is a row-wise dot
        # product with its kernel W (64, 64): rows_i = Σ_j cov_ij W_ij = Σ_d f_di (f Wᵀ)_di / d,
        # computed so without forming the covariance (same FLOPs, no 64×64 map per sample).
        weight = param(self.row_conv.weight, f).view(g * g, g * g)
        rows = (f * torch.matmul(f, weight.t())).sum(1) / f.shape[1]  # (B, 64)
        grid = rows.view(b, 1, g, g)
        # The 1×1 conv 1 → 1 is a scale and a shift; applied on the 8×8 grid before the
        # up-sampling, whose weights sum to one per output, so it commutes with it.
        scale = param(self.proj.weight, grid).view(())
        grid = torch.addcmul(param(self.proj.bias, grid), grid, scale)
        return bilinear_resize(grid, (h, w))


class SpatialStdL2(SqueezeOp):
    """``std_l2``: instance norm then L2 norm over channels → ``(B, 1, H, W)``.

    **Decision** (spec §2, the mirror image of the channel ``std_l2``): standardise each channel
    over H·W (``n = (x − mean_hw x) / sqrt(var_hw x + 1e-5)``, biased variance), per-channel
    affine ``y = γ ⊙ n + β`` (init γ = 1, β = 0) — together exactly ``instance_norm``, whose
    fused kernels are used — then the L2 norm over C at each position divided by ``sqrt(C)``:
    ``sqrt(mean_c y² + 1e-5)``.
    """
    axis = 'channel'

    def __init__(self, channels: int):
        super().__init__(channels)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def prepare(self, stats: FeatureStats) -> None:
        if stats.over('space').one_sweep:
            self._request(stats)

    def statistics(self, stats: FeatureStats) -> Tensor:
        if stats.over('space').one_sweep:
            return self._from_power_sums(stats)
        x = stats.x
        weight, bias = param(self.weight, x), param(self.bias, x)
        if x.shape[2] * x.shape[3] == 1:
            # One position standardises to 0; F.instance_norm refuses such input in training.
            y = bias.view(1, -1, 1, 1).expand_as(x)
        else:
            y = F.instance_norm(x, weight=weight, bias=bias, eps=STD_EPS)
        return torch.sqrt(y.square().mean(1, keepdim=True) + L2_EPS)

    def _request(self, stats: FeatureStats) -> Tensor:
        """Request the weighted sums over channels (once); return the per-channel shifts
        ``b``."""

        def build():
            moments = stats.over('space')
            mu, r2 = moments.raw(1), moments.raw(2)  # (B, C)
            gamma, beta = self.weight.to(torch.float64), self.bias.to(torch.float64)
            a = gamma * torch.rsqrt(r2 - mu * mu + STD_EPS)
            b = beta - a * mu
            c = mu.shape[1]
            rows = torch.stack([2 * a * b / c, a * a / c], dim=1)  # (B, 2, C)
            return 'channel', rows, (1, 2), b

        return stats.request_sums(self, build)

    def _from_power_sums(self, stats: FeatureStats) -> Tensor:
        """The same value from one weighted sweep over channels (float64): instance norm and
        affine are ``y_c = a_c x_c + b_c`` per channel, so ``mean_c y² = Σ_c (a_c²/C) x_c² +
        Σ_c (2 a_c b_c / C) x_c + mean_c b_c²`` — two weighted sums over the channels."""
        b = self._request(stats)
        sums = stats.requested_sums(self)  # (B, 2, N)
        square = sums.sum(1, keepdim=True) + b.square().mean(1, keepdim=True)[..., None]
        _, _, h, w = stats.shape
        return torch.sqrt(square + L2_EPS).to(stats.dtype).view(-1, 1, h, w)


class SpatialL4(L4Squeeze):
    """``l4``: ``(mean_c x⁴ + 1e-6)^(1/4)`` → ``(B, 1, H, W)``, computed in float32."""
    axis = 'channel'


class SpatialGAPGMP(GAPGMPSqueeze):
    """``gap_gmp``: ``δ(BN(Conv2d_{2→1}([mean_c x; max_c x])))`` → ``(B, 1, H, W)``."""
    axis = 'channel'


class SpatialGAPStd(GAPStdSqueeze):
    """``gap_std``: ``δ(BN(Conv2d_{2→1}([mean_c x; std_c x])))`` → ``(B, 1, H, W)``."""
    axis = 'channel'


class SpatialGAPSkew(GAPSkewSqueeze):
    """``gap_skew``: ``δ(BN(Conv2d_{2→1}([mean_c x; skew_c x])))`` → ``(B, 1, H, W)``."""
    axis = 'channel'


#: The spatial-squeeze set, in the spec's order (same names as the channel-squeeze set).
SPATIAL_SQUEEZE_OPS = {
    'gap': SpatialGAP,
    'gsop': SpatialGSoP,
    'std_l2': SpatialStdL2,
    'l4': SpatialL4,
    'gap_gmp': SpatialGAPGMP,
    'gap_std': SpatialGAPStd,
    'gap_skew': SpatialGAPSkew,
}

__all__ = ['SPATIAL_SQUEEZE_OPS'] + [cls.__name__ for cls in SPATIAL_SQUEEZE_OPS.values()]
