"""Lazily computed statistics of one feature map, shared by the squeeze ops that read it.

:class:`FeatureStats` / :class:`AxisMoments` — every squeeze op reads its input through them,
so the ops of one mixed operation (and the two squeeze edges that read the same ``x``) compute
each moment once, and the channel mean and L4 of ``x ⊙ m`` for a per-channel scale ``m`` are had
without materialising it. In the supernet, ``FeatureStats(one_sweep=True)`` takes every moment
of both axes from one sweep of a C++ kernel (:mod:`~mmsase.models.search_space.power_sums`);
elsewhere the moments come from the autograd functions of
:mod:`~mmsase.models.search_space.moment_functions`. The ``eps`` constants of the spec's
formulas live here too.

Precision: moments of order ≥ 2 (std, skew, covariance, L4) are computed in float32 — or
float64 when the input already is — with autocast disabled, because ``x**4`` of ordinary
activations overflows float16 and loses everything in bfloat16 (spec §2, ``l4``). A squeeze op
returns its statistic in that compute precision while autocast is active (autocast then casts
it for the next layer, as it does for its own float32 ops), and in the input's dtype otherwise,
so a network converted wholesale to half precision still type-checks.
"""
from functools import cached_property
from typing import Any, Callable, Optional, Tuple, Union

import torch
from torch import Tensor

from ..utils import compute_dtype
from .moment_functions import CentralMoments, ChannelFourthPowerMean, FourthPowerMean
from .pooling import grid_pool
from .power_sums import Rows, kernel_applies, power_sums_parts, uniform_rows

#: ``eps`` inside the square root of every standard deviation (spec §2, ``gap_std``).
STD_EPS = 1e-5
#: ``eps`` added to ``σ³`` in the skewness denominator (spec §2, ``gap_skew``).
SKEW_EPS = 1e-5
#: ``eps`` inside the fourth root of the L4 pooling (spec §2, ``l4``).
L4_EPS = 1e-6
#: ``eps`` inside the square root of the L2 norm of ``std_l2`` (keeps its gradient finite at 0).
L2_EPS = 1e-5


class _cached_moment:
    """``functools.cached_property`` for :class:`AxisMoments`, keeping the value in the
    :class:`FeatureStats` (one dict per axis) instead of on the ``AxisMoments``. The stats
    then need not hold their ``AxisMoments``, which hold them: such a reference cycle kept
    every forward pass's tensors, and through them its autograd graph, alive until the
    garbage collector ran (the memory of a ResNet-20 search grew with each iteration)."""

    def __init__(self, compute: Callable[['AxisMoments'], Any]) -> None:
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, moments: Optional['AxisMoments'], owner: type = None):
        if moments is None:
            return self
        cache = moments._cache
        if self.name not in cache:
            cache[self.name] = self.compute(moments)
        return cache[self.name]


class AxisMoments:
    """Moments of a feature map along one axis, each computed on first use and cached in the
    :class:`FeatureStats` (so every ``stats.over(axis)`` shares them).

    ``axis='space'`` reduces over ``(H, W)`` → shapes ``(B, C, 1, 1)`` (channel squeeze);
    ``axis='channel'`` reduces over ``C`` → shapes ``(B, 1, H, W)`` (spatial squeeze).
    All results are in the compute dtype (see module docstring); read them inside
    :meth:`FeatureStats.full_precision`.
    """

    def __init__(self, stats: 'FeatureStats', axis: str):
        if axis not in ('space', 'channel'):
            raise ValueError(f"axis must be 'space' or 'channel', got {axis!r}")
        self._stats = stats
        self._cache = stats._axes.setdefault(('moments', axis), {})
        self.axis = axis
        self.dim: Tuple[int, ...] = (2, 3) if axis == 'space' else (1, )

    @property
    def one_sweep(self) -> bool:
        """Whether these moments come from the statistics' one-sweep power sums."""
        return self._stats.sweep_axes is not None and self.axis in self._stats.sweep_axes

    def raw(self, k: int) -> Tensor:
        """The raw moment ``mean x^k`` along the axis, float64, shape ``(B, L)`` (one-sweep
        statistics only)."""
        return self._stats.raw_moments(self.axis)[k - 1]

    def _shaped(self, t: Tensor) -> Tensor:
        """A ``(B, L)`` statistic in the compute dtype and the axis's output shape."""
        b, c, h, w = self._stats.shape
        shape = (b, c, 1, 1) if self.axis == 'space' else (b, 1, h, w)
        return t.to(self._stats.dtype).view(shape)

    @_cached_moment
    def mean(self) -> Tensor:
        s = self._stats
        if self.one_sweep:
            return self._shaped(self.raw(1))
        if self.axis == 'channel':
            # mean_c(m_c x_c) as one matrix product (m = 1 without a channel scale): BLAS reads
            # x once, faster than a strided reduction, and x ⊙ m is never materialised.
            return s.channel_contract(s.channel_scale)
        if s.channel_scale is None:
            return s.x_raw.mean(self.dim, keepdim=True, dtype=s.dtype)
        return s.x.mean(self.dim, keepdim=True)

    @_cached_moment
    def amax(self) -> Tensor:
        s = self._stats
        if self.one_sweep and s.sweep_max(self.axis) is not None:
            return self._shaped(s.sweep_max(self.axis))
        src = s.x_raw if s.channel_scale is None else s.x
        if self.axis == 'space' and torch.is_grad_enabled() and src.requires_grad:
            # max with indices is slower forward but its backward is a scatter instead of
            # amax's comparison of the whole map with the result: faster in training.
            peak = src.flatten(2).max(-1).values[..., None, None]
        else:
            peak = src.amax(self.dim, keepdim=True)
        return peak.to(s.dtype)

    @_cached_moment
    def _central(self) -> Tuple[Tensor, Tensor, Tensor]:
        if self.one_sweep:  # central from raw moments, in float64
            r1, r2, r3 = self.raw(1), self.raw(2), self.raw(3)
            var = r2 - r1 * r1
            third = r3 - r1 * (3 * r2 - 2 * r1 * r1)
            return self.mean, self._shaped(var), self._shaped(third)
        return CentralMoments.apply(self._stats.x, self.dim)

    @property
    def var(self) -> Tensor:
        """Biased variance."""
        return self._central[1]

    @_cached_moment
    def std(self) -> Tensor:
        """``sqrt(var + 1e-5)`` (spec §2, ``gap_std``: biased, eps inside the sqrt)."""
        return torch.sqrt(self.var + STD_EPS)

    @_cached_moment
    def skew(self) -> Tensor:
        """``E[(x − μ)³] / (σ³ + 1e-5)`` with ``σ`` = :attr:`std` (spec §2, ``gap_skew``).

        Using the eps-regularised ``σ`` of ``gap_std`` keeps the gradient finite on constant
        inputs (e.g. a 1×1 map), where ``sqrt(var)`` has an infinite derivative.
        """
        return self._central[2] / (self.std**3 + SKEW_EPS)

    @_cached_moment
    def l4(self) -> Tensor:
        """``(mean x⁴ + 1e-6)^(1/4)`` (spec §2, ``l4``)."""
        s = self._stats
        if self.one_sweep:
            return self._shaped((self.raw(4) + L4_EPS).pow(0.25))
        if self.axis == 'channel':
            # mean_c (m_c x_c)^4 = Σ_c (m_c^4 / C) x_c^4: x ⊙ m is never materialised.
            scale = None if s.channel_scale is None else s.channel_scale.square().square()
            mean4 = s.channel_contract(scale, fourth_power=True)
        else:
            mean4 = FourthPowerMean.apply(s.x, self.dim)
        return (mean4 + L4_EPS).pow(0.25)


class FeatureStats:
    """Lazily computed statistics of one feature map, optionally re-weighted per channel.

    ``FeatureStats(x)`` stands for ``x``; ``FeatureStats(x, channel_scale=m)`` stands for
    ``x ⊙ m`` with ``m`` of shape ``(B, C, 1, 1)`` — the SASE block's ``x' = x ⊙ m2``. The
    channel mean and channel L4 of ``x ⊙ m`` are then matrix products of ``m`` (or ``m⁴``) with
    ``x`` (or ``x⁴``); anything else materialises ``x ⊙ m`` once, on demand.

    Squeeze ops accept a ``FeatureStats`` wherever they accept a tensor; passing the same
    object to several ops lets them share every moment they have in common.

    Args:
        x: the feature map ``(B, C, H, W)``.
        channel_scale: ``m (B, C, 1, 1)``, or ``None``.
        one_sweep: compute every moment of both axes — means, maxima, raw moments up to the
            fourth — in one sweep over ``x`` on first use (the C++ kernel of
            :mod:`~mmsase.models.search_space.power_sums`), and the ``std_l2`` ops from further
            weighted sums. For the supernet, whose squeeze edges need all of them; a fixed block
            needs two or three and is faster with the lazy per-moment path. Ignored (lazy path)
            where the kernel does not apply (:func:`~.power_sums.kernel_applies`).
        parent: ``FeatureStats`` of the same ``x`` without a channel scale; a scaled one reuses
            its sums over space (``mean_p (m x)^k = m^k mean_p x^k``) and its pooled grid.
    """

    def __init__(self,
                 x: Tensor,
                 channel_scale: Optional[Tensor] = None,
                 one_sweep: bool = False,
                 parent: Optional['FeatureStats'] = None):
        if x.dim() != 4:
            raise ValueError(f'expected a (B, C, H, W) feature map, got shape {tuple(x.shape)}')
        if parent is not None and (parent.x_raw is not x or parent.channel_scale is not None):
            raise ValueError('parent must be the unscaled FeatureStats of the same x')
        self.x_raw = x
        self.input_dtype = x.dtype
        self.dtype = compute_dtype(x.dtype)
        self.channel_scale = None if channel_scale is None else channel_scale.to(self.dtype)
        self.device_type = x.device.type
        self.one_sweep = one_sweep
        self.parent = parent
        self._axes = {}
        self._pending = {}  # key → (axis, weights, powers): weighted sums asked for
        self._done = {}  # key → their result
        self._extras = {}  # key → what the requester needs besides the sums

    # ---- one-sweep statistics ------------------------------------------------------------
    @cached_property
    def sweep_axes(self) -> Optional[Tuple[str, ...]]:
        """The axes whose moments come from one sweep, or ``None`` (lazy path)."""
        if not self.one_sweep or not kernel_applies(self.x_raw):
            return None
        return ('space', 'channel')

    @property
    def _reuses_parent_space(self) -> bool:
        return self.parent is not None and self.parent.sweep_axes is not None

    @cached_property
    def _sweep(self):
        """The one sweep: raw moments 1–4 along both axes (those over space taken from the
        parent when it has them), the maxima, and the weighted sums requested so far."""
        b, c, h, w = self.shape
        base = [('channel', uniform_rows(b, c, self.x_raw))]
        if not self._reuses_parent_space:
            base.append(('space', uniform_rows(b, h * w, self.x_raw)))
        sums, result = self._run(base, chan_max=True, space_max=self.channel_scale is None)
        return result._replace(chan=sums[0], space=sums[1] if len(sums) > 1 else None)

    def _run(self, base=(), chan_max: bool = False, space_max: bool = False):
        """One kernel call for the rows ``base`` (``(axis, Rows)`` pairs, of the represented
        map) and every pending request; the requests' results are stored, ``base``'s returned
        (with the call's other outputs)."""
        pending, self._pending = self._pending, {}
        jobs = list(base) + [(axis, Rows(w, tuple(k))) for axis, w, k in pending.values()]
        scale = self._scale_rows()
        chan, space = [], []
        for axis, rows in jobs:
            if axis == 'channel':
                if scale is not None:  # Σ_c w_c (m_c x_c)^k = Σ_c (w_c m_c^k) x_c^k
                    rows = Rows(rows.weights * scale[:, [k - 1 for k in rows.powers]],
                                rows.powers)
                chan.append(rows)
            else:
                space.append(rows)
        out = power_sums_parts(self.x_raw, chan, space, chan_max=chan_max,
                               chan_max_scale=self.channel_scale, space_max=space_max)
        chan_sums, space_sums = iter(out.chan), iter(out.space)
        results = []
        for axis, rows in jobs:
            if axis == 'channel':
                sums = next(chan_sums)
            else:
                sums = next(space_sums)
                if scale is not None:  # Σ_p w_p (m x_p)^k = m^k Σ_p w_p x_p^k
                    sums = sums * scale[:, [k - 1 for k in rows.powers]]
            results.append(sums)
        for key, sums in zip(pending, results[len(base):]):
            self._done[key] = sums
        return results[:len(base)], out

    def _scale_rows(self) -> Optional[Tensor]:
        """``m^k`` for k = 1..4 as ``(B, 4, C)`` float64, or ``None`` without a scale."""
        if self.channel_scale is None:
            return None
        if 'scale_rows' not in self._axes:
            m = self.channel_scale.to(torch.float64).flatten(1)[:, None, :]
            m2 = m * m
            self._axes['scale_rows'] = torch.cat([m, m2, m2 * m, m2 * m2], dim=1)
        return self._axes['scale_rows']

    def raw_moments(self, axis: str) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``mean x^k`` along ``axis`` for k = 1..4 (of the represented ``x`` or ``x ⊙ m``),
        float64 ``(B, L)`` each. One-sweep statistics only."""
        key = ('raw', axis)
        if key not in self._axes:
            self._axes[key] = self.raw_sums(axis).unbind(1)
        return self._axes[key]

    def raw_sums(self, axis: str) -> Tensor:
        """:meth:`raw_moments` stacked, ``(B, 4, L)`` float64."""
        key = ('raw_sums', axis)
        if key not in self._axes:
            self._axes[key] = self._raw_sums(axis)
        return self._axes[key]

    def _raw_sums(self, axis: str) -> Tensor:
        if axis == 'channel':
            return self._sweep.chan
        if self.channel_scale is not None and self._reuses_parent_space:
            # without running this map's own sweep yet
            return self.parent.raw_sums('space') * self._scale_rows()
        return self._sweep.space

    def sweep_max(self, axis: str) -> Optional[Tensor]:
        """The one sweep's maximum along ``axis`` ``(B, L)``, or ``None`` if it has none
        (the maximum over space of a scaled map)."""
        return self._sweep.chan_max if axis == 'channel' else self._sweep.space_max

    def request_sums(self, key, build: Callable[[], tuple]):
        """Ask, once per ``key``, for weighted sums of the represented map, computed with the
        next kernel call on ``x`` — this map's sweep if it has not run yet, else one call for
        all requests made until their first :meth:`requested_sums`.

        ``build()`` runs on the first request for ``key`` only and returns ``(axis, weights,
        powers, extra)``: ``axis='channel'``: ``weights (B, J, C)`` → sums ``(B, J, H·W)``;
        ``axis='space'``: ``weights (B, J, H·W)`` → ``(B, J, C)``; ``Σ_L weights_j · x^k_j`` in
        float64. ``extra`` — whatever else the requester computed on the way and needs later
        — is returned by every request for ``key``. One-sweep statistics only.

        Requesting early lets ops whose weights need the moments share one sweep (the
        supernet asks for its ``std_l2`` sums before running the edges)."""
        if key not in self._extras:
            axis, weights, powers, extra = build()
            self._extras[key] = extra
            self._pending[key] = (axis, weights, tuple(powers))
        return self._extras[key]

    def requested_sums(self, key) -> Tensor:
        """The result of :meth:`request_sums` ``key``, running the pending requests if
        needed."""
        if key not in self._done:
            if key not in self._extras:
                raise KeyError(f'no weighted sums were requested under {key!r}')
            if '_sweep' not in self.__dict__ and self.sweep_axes is not None:
                self._sweep  # noqa: B018 (the sweep takes the pending requests along)
            if key not in self._done:
                self._run()
        return self._done[key]

    # ---- poolings ------------------------------------------------------------------------
    def grid_pool(self, size: int) -> Tensor:
        """Adaptive average pooling of the represented map to ``size × size`` per channel,
        ``(B, C, size, size)`` in the compute dtype. A scaled map scales its parent's (or its
        own raw map's) pooling: pooling is linear, so ``x ⊙ m`` is not formed."""
        key = ('grid', size)
        if key not in self._axes:
            if self.channel_scale is None:
                pooled = grid_pool(self.x_raw.to(self.dtype), size)
            else:
                base = self.parent if self.parent is not None else FeatureStats(self.x_raw)
                pooled = base.grid_pool(size) * self.channel_scale
            self._axes[key] = pooled
        return self._axes[key]

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
        return AxisMoments(self, axis)

    def channel_contract(self, weight: Optional[Tensor], fourth_power: bool = False) -> Tensor:
        """``mean_c(weight_c · x_c)`` — or of ``x_c⁴`` — of the raw ``x (B,C,H,W)``, for
        ``weight (B,C,1,1)`` or ``None`` (all ones), → ``(B,1,H,W)``.

        One batched matrix product: BLAS reads ``x`` once, faster than a product followed by a
        strided reduction over channels. Without autograd on the CPU, ``x⁴`` is formed one
        sample at a time in a reused, cache-sized buffer rather than as a full-size temporary.
        """
        b, c, h, w = self.x_raw.shape
        x = self.x_raw.to(self.dtype).reshape(b, c, h * w)
        if weight is None:
            weight = x.new_ones(b, 1, c)
        else:
            weight = weight.to(self.dtype).reshape(b, 1, c)
        if not fourth_power:
            out = torch.bmm(weight / c, x)
        elif (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
              or x.device.type != 'cpu'):
            out = ChannelFourthPowerMean.apply(x, weight)
        else:
            out = x.new_empty(b, 1, h * w)
            power = x.new_empty(c, h * w)
            weight = weight / c
            for i in range(b):
                torch.square(x[i], out=power)
                power.square_()
                torch.mm(weight[i], power, out=out[i])
        return out.view(b, 1, h, w)

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
