"""Helpers shared by the four operation sets.

* :func:`check_channels` — the constructor-argument check every op and block uses.
* :class:`FeatureStats` / :class:`AxisMoments` — lazily computed statistics of one feature
  map. Every squeeze op reads its input through them, so the ops of one mixed operation (and
  the two squeeze edges that read the same ``x``) compute each moment once, and the moments
  of ``x ⊙ m`` for a per-channel scale ``m`` can be had without materialising ``x ⊙ m``.
* :class:`StatFusion1d` / :class:`StatFusion2d` — the "convolution block over the two
  statistics" of ``gap_gmp``, ``gap_std``, ``gap_skew`` (spec §2, **Decision**: 5 parameters).

Precision: moments of order ≥ 2 (std, skew, covariance, L4) are computed in float32 — or
float64 when the input already is — with autocast disabled, because ``x**4`` of ordinary
activations overflows float16 and loses everything in bfloat16 (spec §2, ``l4``). A squeeze op
returns its statistic in that compute precision while autocast is active (autocast then casts
it for the next layer, as it does for its own float32 ops), and in the input's dtype otherwise,
so a network converted wholesale to half precision still type-checks.
"""
from functools import cached_property
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

#: ``eps`` inside the square root of every standard deviation (spec §2, ``gap_std``).
STD_EPS = 1e-5
#: ``eps`` added to ``σ³`` in the skewness denominator (spec §2, ``gap_skew``).
SKEW_EPS = 1e-5
#: ``eps`` inside the fourth root of the L4 pooling (spec §2, ``l4``).
L4_EPS = 1e-6


def check_channels(value, name: str = 'channels') -> int:
    """Return ``value`` if it is a positive ``int``; raise a ``ValueError`` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}')
    return value


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are computed in: float32 for half/bfloat16, else ``dtype``."""
    return torch.promote_types(dtype, torch.float32)


class AxisMoments:
    """Moments of a feature map along one axis, each computed on first use and cached.

    ``axis='space'`` reduces over ``(H, W)`` → shapes ``(B, C, 1, 1)`` (channel squeeze);
    ``axis='channel'`` reduces over ``C`` → shapes ``(B, 1, H, W)`` (spatial squeeze).
    All results are in the compute dtype (see module docstring); read them inside
    :meth:`FeatureStats.full_precision`.
    """

    def __init__(self, stats: 'FeatureStats', axis: str):
        if axis not in ('space', 'channel'):
            raise ValueError(f"axis must be 'space' or 'channel', got {axis!r}")
        self._stats = stats
        self.axis = axis
        self.dim: Tuple[int, ...] = (2, 3) if axis == 'space' else (1, )

    def _mean(self, t: Tensor) -> Tensor:
        return t.mean(self.dim, keepdim=True)

    @cached_property
    def mean(self) -> Tensor:
        s = self._stats
        if s.channel_scale is None:
            return s.x_raw.mean(self.dim, keepdim=True, dtype=s.dtype)
        if self.axis == 'channel':
            # mean_c(x_c m_c) as one matrix product: x ⊙ m is never materialised.
            return s.channel_contract(s.x_raw, s.channel_scale)
        return self._mean(s.x)

    @cached_property
    def amax(self) -> Tensor:
        s = self._stats
        src = s.x_raw if s.channel_scale is None else s.x
        return src.amax(self.dim, keepdim=True).to(s.dtype)

    @cached_property
    def centered(self) -> Tensor:
        """``x − mean``, full size; shared by the variance, skewness and standardisation."""
        return self._stats.x - self.mean

    @cached_property
    def var(self) -> Tensor:
        """Biased variance."""
        return self._mean(self.centered.square())

    @cached_property
    def std(self) -> Tensor:
        """``sqrt(var + 1e-5)`` (spec §2, ``gap_std``: biased, eps inside the sqrt)."""
        return torch.sqrt(self.var + STD_EPS)

    @cached_property
    def skew(self) -> Tensor:
        """``E[(x − μ)³] / (σ³ + 1e-5)`` with ``σ`` = :attr:`std` (spec §2, ``gap_skew``).

        Using the eps-regularised ``σ`` of ``gap_std`` keeps the gradient finite on constant
        inputs (e.g. a 1×1 map), where ``sqrt(var)`` has an infinite derivative.
        """
        c = self.centered
        third = self._mean(c.square() * c)
        return third / (self.std ** 3 + SKEW_EPS)

    @cached_property
    def l4(self) -> Tensor:
        """``(mean x⁴ + 1e-6)^(1/4)`` (spec §2, ``l4``)."""
        s = self._stats
        if self.axis == 'channel' and s.channel_scale is not None:
            # mean_c (x_c m_c)^4 = Σ_c (m_c^4 / C) x_c^4: one power of x, one matrix product.
            mean4 = s.channel_contract(s.x_raw.to(s.dtype).square().square(),
                                       s.channel_scale.square().square())
        else:
            mean4 = self._mean(s.x.square().square())
        return (mean4 + L4_EPS).pow(0.25)


class FeatureStats:
    """Lazily computed statistics of one feature map, optionally re-weighted per channel.

    ``FeatureStats(x)`` stands for ``x``; ``FeatureStats(x, channel_scale=m)`` stands for
    ``x ⊙ m`` with ``m`` of shape ``(B, C, 1, 1)`` — the SASE block's ``x' = x ⊙ m2``. Moments
    that are linear in a per-channel scale (channel means, channel L4) are then computed as
    matrix products with ``x`` itself; anything else materialises ``x ⊙ m`` once, on demand.

    Squeeze ops accept a ``FeatureStats`` wherever they accept a tensor; passing the same
    object to several ops lets them share every moment they have in common.
    """

    def __init__(self, x: Tensor, channel_scale: Optional[Tensor] = None):
        if x.dim() != 4:
            raise ValueError(f'expected a (B, C, H, W) feature map, got shape {tuple(x.shape)}')
        self.x_raw = x
        self.input_dtype = x.dtype
        self.dtype = compute_dtype(x.dtype)
        self.channel_scale = None if channel_scale is None else channel_scale.to(self.dtype)
        self.device_type = x.device.type
        self._axes = {}

    @property
    def shape(self) -> torch.Size:
        return self.x_raw.shape

    @cached_property
    def x(self) -> Tensor:
        """The represented tensor (``x`` or ``x ⊙ m``) in the compute dtype."""
        x = self.x_raw.to(self.dtype)
        return x if self.channel_scale is None else x * self.channel_scale

    def over(self, axis: str) -> AxisMoments:
        """The :class:`AxisMoments` along ``axis`` (``'space'`` or ``'channel'``)."""
        if axis not in self._axes:
            self._axes[axis] = AxisMoments(self, axis)
        return self._axes[axis]

    def channel_contract(self, t: Tensor, weight: Tensor) -> Tensor:
        """``mean_c(weight_c · t_c)`` for ``t (B,C,H,W)``, ``weight (B,C,1,1)`` → ``(B,1,H,W)``.

        A batched matrix product reads ``t`` once with BLAS instead of an elementwise product
        followed by a strided reduction over channels.
        """
        b, c, h, w = t.shape
        t = t.to(self.dtype)
        weight = weight.to(self.dtype).reshape(b, 1, c) / c
        return torch.bmm(weight, t.reshape(b, c, h * w)).view(b, 1, h, w)

    def full_precision(self):
        """Context in which statistics are computed: autocast off for this device."""
        return torch.autocast(self.device_type, enabled=False)

    def restore(self, out: Tensor) -> Tensor:
        """Return a statistic as squeeze ops do: compute dtype under autocast, input dtype
        otherwise (see module docstring)."""
        if torch.is_autocast_enabled(self.device_type):
            return out
        return out.to(self.input_dtype)


def as_stats(x: Union[Tensor, FeatureStats]) -> FeatureStats:
    """Wrap a tensor in :class:`FeatureStats`; pass an existing one through."""
    return x if isinstance(x, FeatureStats) else FeatureStats(x)


def param(p: Tensor, like: Tensor) -> Tensor:
    """A parameter cast to the dtype of ``like`` (for use inside the full-precision region)."""
    return p if p.dtype == like.dtype else p.to(like.dtype)


class StatFusion1d(nn.Module):
    """Fuse two per-channel statistics into one: ``δ(BN(Conv1d_{2→1,k=1}([a; b])))``.

    Input: two ``(B, C, 1, 1)`` tensors, stacked as a 2-channel length-C signal ``(B, 2, C)``.
    Output: ``(B, C, 1, 1)``. 5 parameters (conv 2 + bias 1, BN 2).
    **Decision** (spec §2, items 5–7): one shared 2→1 fusion instead of a ``2C → C`` 1×1 conv.
    In training mode BN normalises over ``B·C`` values, so a batch of one is fine for ``C > 1``.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel_size=1, bias=True)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        signal = torch.cat([a.flatten(1).unsqueeze(1), b.flatten(1).unsqueeze(1)], dim=1)
        return F.relu(self.bn(self.conv(signal))).view_as(a)


class StatFusion2d(nn.Module):
    """Fuse two spatial maps into one: ``δ(BN(Conv2d_{2→1,k=1}([a; b])))``.

    Input: two ``(B, 1, H, W)`` maps; output ``(B, 1, H, W)``. 5 parameters. Used by the
    spatial ``gap_gmp``/``gap_std``/``gap_skew`` ops and by the SASE block to fuse
    ``[ss1(x), ss2(x')]`` (spec §1).
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=1, bias=True)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(torch.cat([a, b], dim=1))))
