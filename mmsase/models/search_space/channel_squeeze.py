"""Channel-squeeze set (spec §2): ``(B, C, H, W) → (B, C, 1, 1)``, statistics over H·W.

| name       | operation                                                         | params      |
|------------|-------------------------------------------------------------------|-------------|
| `gap`      | mean over H·W (SE)                                                | 0           |
| `gsop`     | covariance of C/4 pooled channels, row-wise conv, 1×1 conv (GSoP) | d² + dC + C |
| `std_l2`   | standardise over C per position, affine, L2 over H·W / √(HW)      | 2C          |
| `l4`       | ``(mean_hw x⁴ + 1e-6)^(1/4)``                                     | 0           |
| `gap_gmp`  | mean and max, fused (CBAM)                                        | 5           |
| `gap_std`  | mean and std, fused (SRM)                                         | 5           |
| `gap_skew` | mean and skewness, fused (MCA)                                    | 5           |

(``d = max(1, C // 4)``.) Every op accepts a tensor or a
:class:`~mmsase.models.search_space.statistics.FeatureStats`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .pooling import gsop_groups, pool_channels
from .squeeze import (GAPGMPSqueeze, GAPSkewSqueeze, GAPSqueeze, GAPStdSqueeze, L4Squeeze,
                      SqueezeOp)
from .statistics import L2_EPS, STD_EPS, FeatureStats, param


class ChannelGAP(GAPSqueeze):
    """``gap``: ``mean_hw x`` → ``(B, C, 1, 1)``."""
    axis = 'space'


class ChannelGSoP(SqueezeOp):
    """``gsop``: global second-order pooling (GSoP-Net) → ``(B, C, 1, 1)``.

    ``x (B,C,H,W)`` → adaptive average pooling of the channels to ``d = max(1, C // 4)``
    → covariance of the ``d`` channels over the ``H·W`` positions ``(B, d, d)`` (biased, as
    GSoP) → row-wise conv: each row compressed to one value by a depthwise conv with kernel
    ``(d, 1)``, groups ``d`` ``(B, d, 1, 1)`` → 1×1 conv ``d → C`` with bias.

    **Decision** (spec §2): no BN/ReLU between the row-wise conv and the 1×1 conv. With nothing
    non-linear between them, a row-wise bias would be absorbed by the 1×1 conv's bias, so the
    row-wise conv has none.
    """
    axis = 'space'

    def __init__(self, channels: int):
        super().__init__(channels)
        self.groups = gsop_groups(channels)
        d = self.groups
        self.row_conv = nn.Conv2d(d, d, kernel_size=(d, 1), groups=d, bias=False)
        self.expand = nn.Conv2d(d, channels, kernel_size=1, bias=True)

    def statistics(self, stats: FeatureStats) -> Tensor:
        f = pool_channels(stats.x, self.groups).flatten(2)  # (B, d, HW)
        f = f - f.mean(2, keepdim=True)
        cov = torch.bmm(f, f.transpose(1, 2)) / f.shape[2]  # (B, d, d)
        # The row-wise (depthwise, kernel (d, 1)) conv is a row-wise dot product with its
        # kernel; written so, it is far faster than a grouped conv with a tall kernel.
        d = self.groups
        rows = (cov * param(self.row_conv.weight, cov).view(d, d)).sum(-1)  # (B, d)
        out = F.linear(rows, param(self.expand.weight, rows).view(self.channels, d),
                       param(self.expand.bias, rows))
        return out.view(-1, self.channels, 1, 1)


class ChannelStdL2(SqueezeOp):
    """``std_l2``: standardisation then L2 norm (GCT / EAN style) → ``(B, C, 1, 1)``.

    **Decision** (spec §2): standardise *across the channels at each position*
    (``n = (x − mean_c x) / sqrt(var_c x + 1e-5)``, biased variance), apply a learnable
    per-channel affine ``y = γ ⊙ n + β`` (init γ = 1, β = 0), then each channel's L2 norm over
    H·W divided by ``sqrt(H·W)``: ``sqrt(mean_hw y² + 1e-5)``. The literal reading
    (standardise each channel over its own H·W) would make the output the constant
    ``sqrt(γ² + β²)``. The standardisation and affine are exactly ``layer_norm`` over C of the
    channels-last view, whose fused kernels are used.
    """
    axis = 'space'

    def __init__(self, channels: int):
        super().__init__(channels)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def _sweeps(self, stats: FeatureStats) -> bool:
        return stats.channel_scale is None and stats.over('channel').one_sweep

    def prepare(self, stats: FeatureStats) -> None:
        if self._sweeps(stats):
            self._request(stats)

    def statistics(self, stats: FeatureStats) -> Tensor:
        if self._sweeps(stats):
            return self._from_power_sums(stats)
        x = stats.x.permute(0, 2, 3, 1)  # (B, H, W, C)
        y = F.layer_norm(x, (self.channels, ), param(self.weight, x), param(self.bias, x),
                         eps=STD_EPS)
        out = torch.sqrt(y.square().mean((1, 2)) + L2_EPS)  # (B, C)
        return out[..., None, None]

    def _request(self, stats: FeatureStats):
        """Request the weighted sums over positions (once); return ``(μ_p, s_p)``."""

        def build():
            moments = stats.over('channel')
            mu, r2 = moments.raw(1), moments.raw(2)  # (B, N)
            s = torch.rsqrt(r2 - mu * mu + STD_EPS)
            n = mu.shape[1]
            rows = torch.stack([s / n, -2 * mu * s * s / n, s * s / n], dim=1)  # (B, 3, N)
            return 'space', rows, (1, 1, 2), (mu, s)

        return stats.request_sums(self, build)

    def _from_power_sums(self, stats: FeatureStats) -> Tensor:
        """The same value from one weighted sweep over positions (float64): with the
        per-position ``μ_p``, ``s_p = 1/sqrt(var_p + eps)`` and ``n = (x − μ_p) s_p``,
        ``mean_p y_c² = γ_c² mean_p n_c² + 2 γ_c β_c mean_p n_c + β_c²`` and both means are
        weighted sums of ``x_c`` and ``x_c²`` over the positions."""
        mu, s = self._request(stats)
        t = stats.requested_sums(self)  # (B, 3, C)
        mean_n = t[:, 0] - (s * mu).mean(1, keepdim=True)
        mean_n2 = t[:, 2] + t[:, 1] + (mu * mu * s * s).mean(1, keepdim=True)
        gamma, beta = self.weight.to(torch.float64), self.bias.to(torch.float64)
        square = gamma.square() * mean_n2 + 2 * gamma * beta * mean_n + beta.square()
        out = torch.sqrt(square + L2_EPS)
        return out.to(stats.dtype)[..., None, None]


class ChannelL4(L4Squeeze):
    """``l4``: ``(mean_hw x⁴ + 1e-6)^(1/4)`` → ``(B, C, 1, 1)``, computed in float32."""
    axis = 'space'


class ChannelGAPGMP(GAPGMPSqueeze):
    """``gap_gmp``: ``δ(BN(Conv1d_{2→1}([mean_hw x; max_hw x])))`` → ``(B, C, 1, 1)``."""
    axis = 'space'


class ChannelGAPStd(GAPStdSqueeze):
    """``gap_std``: ``δ(BN(Conv1d_{2→1}([mean_hw x; std_hw x])))`` → ``(B, C, 1, 1)``."""
    axis = 'space'


class ChannelGAPSkew(GAPSkewSqueeze):
    """``gap_skew``: ``δ(BN(Conv1d_{2→1}([mean_hw x; skew_hw x])))`` → ``(B, C, 1, 1)``."""
    axis = 'space'


#: The channel-squeeze set, in the spec's order.
CHANNEL_SQUEEZE_OPS = {
    'gap': ChannelGAP,
    'gsop': ChannelGSoP,
    'std_l2': ChannelStdL2,
    'l4': ChannelL4,
    'gap_gmp': ChannelGAPGMP,
    'gap_std': ChannelGAPStd,
    'gap_skew': ChannelGAPSkew,
}

__all__ = ['CHANNEL_SQUEEZE_OPS'] + [cls.__name__ for cls in CHANNEL_SQUEEZE_OPS.values()]
