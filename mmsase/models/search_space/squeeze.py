"""The base of every squeeze op, and the squeeze ops both squeeze sets share.

:class:`SqueezeOp` reads its input through :class:`~.statistics.FeatureStats`. ``gap``,
``l4`` and the fused pairs ``gap_gmp``, ``gap_std``, ``gap_skew`` are the same statistic in the
channel and the spatial set, taken over H·W (``axis='space'``, channel squeeze) or over C
(``axis='channel'``, spatial squeeze); each set's module fixes the axis in a subclass.
"""
from typing import Sequence, Tuple, Union

import torch.nn as nn
from torch import Tensor

from ..utils import check_channels
from .fusion import StatFusion1d, StatFusion2d
from .statistics import AxisMoments, FeatureStats, as_stats


class SqueezeOp(nn.Module):
    """Base of every squeeze op.

    ``forward`` accepts a ``(B, C, H, W)`` tensor or a :class:`FeatureStats` (to share moments
    with other ops) and returns ``(B, C, 1, 1)`` (``axis='space'``) or ``(B, 1, H, W)``
    (``axis='channel'``). Subclasses implement :meth:`statistics` — parameter-free or not, run
    in full precision — and optionally :meth:`head`, which runs afterwards at the ambient
    precision (e.g. the two-statistic fusion).
    """

    #: ``'space'`` (reduce H·W: channel squeeze) or ``'channel'`` (reduce C: spatial squeeze).
    axis: str = ''

    def __init__(self, channels: int):
        super().__init__()
        self.channels = check_channels(channels)

    def statistics(self, stats: FeatureStats) -> Union[Tensor, Sequence[Tensor]]:
        raise NotImplementedError

    def prepare(self, stats: FeatureStats) -> None:
        """Called before the op runs on ``stats`` when several ops share it (the supernet):
        ops whose statistics need extra weighted sums request them here (see
        :meth:`FeatureStats.request_sums`), so that they share a kernel call."""

    def head(self, *statistics: Tensor) -> Tensor:
        (out, ) = statistics
        return out

    def forward(self, x: Union[Tensor, FeatureStats]) -> Tensor:
        stats = as_stats(x)
        with stats.full_precision():
            out = self.statistics(stats)
        if isinstance(out, Tensor):
            out = (out, )
        return self.head(*(stats.restore(t) for t in out))

    def extra_repr(self) -> str:
        return f'channels={self.channels}'


class GAPSqueeze(SqueezeOp):
    """``gap``: the mean along the axis (SE's global average pooling)."""

    def statistics(self, stats: FeatureStats) -> Tensor:
        return stats.over(self.axis).mean


class L4Squeeze(SqueezeOp):
    """``l4``: L_p pooling with p = 4, ``(mean x⁴ + 1e-6)^(1/4)``, no standardisation; always in
    float32 or better (spec §2)."""

    def statistics(self, stats: FeatureStats) -> Tensor:
        return stats.over(self.axis).l4


class TwoStatSqueeze(SqueezeOp):
    """Mean plus a second statistic, fused by a 5-parameter conv block (spec §2 items 5–7,
    **Decision**). Subclasses define :meth:`second`."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.fusion = StatFusion1d() if self.axis == 'space' else StatFusion2d()

    def second(self, moments: AxisMoments) -> Tensor:
        raise NotImplementedError

    def statistics(self, stats: FeatureStats) -> Tuple[Tensor, Tensor]:
        moments = stats.over(self.axis)
        return moments.mean, self.second(moments)

    def head(self, mean: Tensor, second: Tensor) -> Tensor:
        return self.fusion(mean, second)


class GAPGMPSqueeze(TwoStatSqueeze):
    """``gap_gmp``: mean and max (CBAM)."""

    def second(self, moments: AxisMoments) -> Tensor:
        return moments.amax


class GAPStdSqueeze(TwoStatSqueeze):
    """``gap_std``: mean and biased std ``sqrt(var + 1e-5)`` (SRM)."""

    def second(self, moments: AxisMoments) -> Tensor:
        return moments.std


class GAPSkewSqueeze(TwoStatSqueeze):
    """``gap_skew``: mean and skewness ``E[(x − μ)³] / (σ³ + 1e-5)`` (MCA)."""

    def second(self, moments: AxisMoments) -> Tensor:
        return moments.skew
