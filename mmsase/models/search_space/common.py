"""Helpers shared by the four operation sets.

Statistics (the squeeze sets):

* :class:`FeatureStats` / :class:`AxisMoments` — lazily computed statistics of one feature
  map. Every squeeze op reads its input through them, so the ops of one mixed operation (and
  the two squeeze edges that read the same ``x``) compute each moment once, and the channel
  mean and L4 of ``x ⊙ m`` for a per-channel scale ``m`` are had without materialising it.
* :class:`CentralMoments`, :class:`FourthPowerMean`, :class:`ChannelFourthPowerMean` —
  autograd functions with hand-written gradients: the same values as the plain formulas, with
  a few passes over the map in the backward pass instead of a dozen (tested by gradcheck).
* :class:`StatFusion1d` / :class:`StatFusion2d` — the "convolution block over the two
  statistics" of ``gap_gmp``, ``gap_std``, ``gap_skew`` (spec §2, **Decision**: 5 parameters).
* :class:`SqueezeOp` and the statistics both squeeze sets share (``gap``, ``l4``, the fused
  pairs), parameterised by the axis they reduce.

Excitation: :class:`ExcitationOp` (``σ(logits)``) and :class:`ConvStackExcitation`.
Mixtures: :func:`squeeze_mixture`, :func:`excitation_mixture` — ``Σ_o w_o · o(x)`` for the
supernet, sharing work between the ops of a set. In the supernet, ``FeatureStats(one_sweep=
True)`` takes every moment of both axes from one sweep of a C++ kernel
(:mod:`~mmsase.models.search_space.power_sums`), and the convolution stacks of an excitation
edge run as one C++ call (:mod:`~mmsase.models.search_space.conv_stacks`).

Precision: moments of order ≥ 2 (std, skew, covariance, L4) are computed in float32 — or
float64 when the input already is — with autocast disabled, because ``x**4`` of ordinary
activations overflows float16 and loses everything in bfloat16 (spec §2, ``l4``). A squeeze op
returns its statistic in that compute precision while autocast is active (autocast then casts
it for the next layer, as it does for its own float32 ops), and in the input's dtype otherwise,
so a network converted wholesale to half precision still type-checks.
"""
from functools import cached_property, lru_cache
from typing import Any, Callable, Optional, Sequence, Tuple, Union

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
#: ``eps`` inside the square root of the L2 norm of ``std_l2`` (keeps its gradient finite at 0).
L2_EPS = 1e-5


class UnknownNameError(KeyError, ValueError):
    """An unknown edge, set or operation name. Both a ``KeyError`` (a failed look-up) and a
    ``ValueError`` (a bad argument), with its message printed unquoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def check_channels(value, name: str = 'channels') -> int:
    """Return ``value`` if it is a positive ``int``; raise a ``ValueError`` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}')
    return value


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are computed in: float32 for half/bfloat16, else ``dtype``."""
    return torch.promote_types(dtype, torch.float32)


class CentralMoments(torch.autograd.Function):
    """``(mean, biased variance, third central moment)`` of ``x`` over ``dim`` (kept).

    Autograd through ``c = x − μ``, ``c²``, ``c³`` writes and reads about a dozen full-size
    tensors; the analytic gradient needs three passes::

        ∂mean/∂x = 1/n,   ∂var/∂x = 2c/n,   ∂third/∂x = 3(c² − var)/n

    so ``∂L/∂x = a + c·(b + c·d)`` with small broadcast ``a, b, d``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dim: Tuple[int, ...]):
        n = _numel(x, dim)
        mean = x.mean(dim, keepdim=True)
        c = x - mean
        c2 = c * c
        var = c2.mean(dim, keepdim=True)
        third = c2.mul_(c).mean(dim, keepdim=True)
        ctx.save_for_backward(c, var)
        ctx.n = n
        return mean, var, third

    @staticmethod
    def backward(ctx, g_mean, g_var, g_third):
        c, var = ctx.saved_tensors
        n = ctx.n
        zero = torch.zeros_like(var)
        g_mean = zero if g_mean is None else g_mean
        g_var = zero if g_var is None else g_var
        g_third = zero if g_third is None else g_third
        a = (g_mean - 3 * g_third * var) / n
        grad = torch.addcmul(g_var * (2 / n), c, g_third * (3 / n))
        return grad.mul_(c).add_(a), None


class FourthPowerMean(torch.autograd.Function):
    """``mean(x⁴)`` over ``dim`` (kept), with the gradient ``4x³/n`` computed in place."""

    @staticmethod
    def forward(ctx, x: Tensor, dim: Tuple[int, ...]):
        ctx.save_for_backward(x)
        ctx.n = _numel(x, dim)
        return (x * x).square_().mean(dim, keepdim=True)

    @staticmethod
    def backward(ctx, g):
        (x, ) = ctx.saved_tensors
        return (x * x).mul_(x).mul_(g * (4 / ctx.n)), None


class ChannelFourthPowerMean(torch.autograd.Function):
    """``mean_c(w_c · x_c⁴)`` for ``x (B, C, N)`` and ``w (B, 1, C)`` → ``(B, 1, N)``: one
    matrix product forward; the gradient ``4 w_c x_c³ g / C`` formed in place."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor):
        ctx.save_for_backward(x, w)
        return torch.bmm(w / x.shape[1], (x * x).square_())

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        c = x.shape[1]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = (x * x).mul_(x).mul_(w.transpose(1, 2) * (4 / c)).mul_(g)
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(g, (x * x).square_().transpose(1, 2)) / c
        return grad_x, grad_w


def _numel(x: Tensor, dim: Tuple[int, ...]) -> int:
    n = 1
    for d in dim:
        n *= x.shape[d]
    return n


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
        from .power_sums import kernel_applies
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
        from .power_sums import uniform_rows
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
        from .power_sums import Rows, power_sums_parts
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


class StatFusion1d(nn.Module):
    """Fuse two per-channel statistics into one: ``δ(BN(Conv1d_{2→1,k=1}([a; b])))``.

    Input: two ``(B, C, 1, 1)`` tensors, read as a 2-channel length-C signal ``(B, 2, C)``.
    Output: ``(B, C, 1, 1)``. 5 parameters (conv 2 + bias 1, BN 2).
    **Decision** (spec §2, items 5–7): one shared 2→1 fusion instead of a ``2C → C`` 1×1 conv.
    In training mode BN normalises over ``B·C`` values, so a batch of one is fine for ``C > 1``.

    The 1×1 conv over two channels is evaluated as ``w0·a + w1·b + bias`` — the same maths
    without stacking the inputs or calling a convolution kernel for 2 input channels.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel_size=1, bias=True)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        y = _combine_two(a, b, self.conv)
        return F.relu(self.bn(y.reshape(y.shape[0], 1, -1))).view(y.shape)


class StatFusion2d(nn.Module):
    """Fuse two spatial maps into one: ``δ(BN(Conv2d_{2→1,k=1}([a; b])))``.

    Input: two ``(B, 1, H, W)`` maps; output ``(B, 1, H, W)``. 5 parameters. Used by the
    spatial ``gap_gmp``/``gap_std``/``gap_skew`` ops and by the SASE block to fuse
    ``[ss1(x), ss2(x')]`` (spec §1). Evaluated as :class:`StatFusion1d` is.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=1, bias=True)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return F.relu(self.bn(_combine_two(a, b, self.conv)))


def _combine_two(a: Tensor, b: Tensor, conv: nn.Module) -> Tensor:
    """``conv([a; b])`` for a 2→1 conv with a 1-element kernel: ``w0·a + w1·b + bias``."""
    w = conv.weight.reshape(2)
    return torch.addcmul(a * w[0] + conv.bias, b, w[1])


# --------------------------------------------------------------------------------------------
# Squeeze operations shared by the channel and spatial sets: the same statistic, taken over
# H·W (``axis='space'``, channel squeeze) or over C (``axis='channel'``, spatial squeeze).
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Excitation operations: σ(logits), and stacks of single-filter convolutions.
# --------------------------------------------------------------------------------------------
Kernel = Union[int, Tuple[int, ...]]


class ExcitationOp(nn.Module):
    """Base of every excitation op: ``forward(v) = σ(logits(v))``, same shape in and out."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = check_channels(channels)

    def logits(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, v: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(v))


class ConvStackExcitation(ExcitationOp):
    """Stacked single-filter convolutions (1 input and 1 output channel each), zero padding
    ``k // 2`` ('same'); ReLU between consecutive convs if ``relu_between``.

    Subclasses fix ``conv_dims`` (1: a 1-D conv across the channels of ``(B, C, 1, 1)``;
    2: a 2-D conv over the positions of ``(B, 1, H, W)``) and, for 1-D,
    :meth:`to_signal`/:meth:`from_signal`. Odd kernel sizes only (centred 'same' padding).
    """

    conv_dims = 2

    def __init__(self,
                 channels: int,
                 kernel_sizes: Sequence[Kernel],
                 biases: Sequence[bool],
                 relu_between: bool = True):
        super().__init__(channels)
        if len(kernel_sizes) != len(biases):
            raise ValueError(f'{len(kernel_sizes)} kernel sizes but {len(biases)} bias flags')
        conv_cls = nn.Conv1d if self.conv_dims == 1 else nn.Conv2d
        convs = []
        for k, bias in zip(kernel_sizes, biases):
            k = (k, ) * self.conv_dims if isinstance(k, int) else tuple(k)
            if any(side % 2 == 0 for side in k):
                raise ValueError(f'kernel sizes must be odd, got {k}')
            convs.append(conv_cls(1, 1, k, padding=tuple(side // 2 for side in k), bias=bias))
        self.convs = nn.ModuleList(convs)
        self.relu_between = relu_between

    def to_signal(self, v: Tensor) -> Tensor:
        """The op's input as a 1-channel conv input."""
        return v

    def from_signal(self, s: Tensor, v: Tensor) -> Tensor:
        """A 1-channel conv output back in the op's output shape (that of ``v``)."""
        return s

    def logits(self, v: Tensor) -> Tensor:
        s = self.to_signal(v)
        for i, conv in enumerate(self.convs):
            if i and self.relu_between:
                s = F.relu(s)
            s = conv_single_channel(s, conv.weight, conv.bias, conv.padding)
        return self.from_signal(s, v)


def conv_single_channel(x: Tensor, weight: Tensor, bias: Optional[Tensor],
                        padding: Tuple[int, ...]) -> Tensor:
    """A 1-in 1-out convolution: ``F.conv2d(x, weight, bias, padding=padding)`` of
    ``x (B, 1, H, W)`` computed as a depthwise convolution of ``(1, B, H, W)`` (the kernel
    repeated per sample); 1-D inputs ``(B, 1, L)`` go to ``F.conv1d`` as they are.

    The result is the same; the speed is not: a one-channel convolution is a poor fit for the
    CPU kernels chosen for ordinary layers (oneDNN's backward pass measured ~10× slower for
    ``(64, 1, 32, 32)``), while depthwise convolutions are well optimised everywhere.
    """
    b = x.shape[0]
    if x.dim() != 4 or b == 1:
        conv = F.conv1d if x.dim() == 3 else F.conv2d
        return conv(x, weight, bias, padding=padding)
    out = F.conv2d(x.reshape(1, b, *x.shape[2:]), weight.expand(b, -1, -1, -1),
                   None if bias is None else bias.expand(b), padding=padding, groups=b)
    return out.view(b, 1, *out.shape[2:])


# --------------------------------------------------------------------------------------------
# Mixtures: Σ_o w_o · o(x) over all ops of a set, sharing work between the ops.
# --------------------------------------------------------------------------------------------
def weighted_sum(outputs: Union[Sequence[Tensor], Tensor], weights: Tensor) -> Tensor:
    """``Σ_k weights[k] · outputs[k]`` for ``K`` same-shaped outputs (a sequence, or a tensor
    stacked along dim 0) and ``weights (K,)``."""
    stacked = outputs if isinstance(outputs, Tensor) else torch.stack(list(outputs))
    k = stacked.shape[0]
    # one vector-matrix product: one pass over the outputs forward and one per gradient
    return (weights.to(stacked.dtype).view(1, k) @ stacked.reshape(k, -1)).view(stacked.shape[1:])


def squeeze_mixture(ops: Sequence[nn.Module], x: Union[Tensor, FeatureStats],
                    weights: Tensor) -> Tensor:
    """All squeeze ops read one :class:`FeatureStats`, so shared moments are computed once;
    with one-sweep statistics the five moment ops are one autograd node
    (:func:`~.moment_mixture.moment_mixture`)."""
    from .moment_mixture import moment_mixture
    stats = as_stats(x)
    fused = moment_mixture(ops, stats, weights)
    if fused is None:
        return weighted_sum([op(stats) for op in ops], weights)
    out, rest = fused
    mix = weights.to(out.dtype)
    for i in rest:
        out = torch.addcmul(out, ops[i](stats), mix[i])
    return out


def excitation_mixture(ops: Sequence[ExcitationOp], v: Tensor, weights: Tensor) -> Tensor:
    """One sigmoid for the stacked logits of all ops; the convolution stacks all run in one
    C++ call (:func:`~.conv_stacks.conv_stack_logits`) where the kernel applies.

    (With torch's own convolutions, one zero-padded multi-filter convolution per layer was
    slower on the CPU than separate small ones; the dedicated kernel is faster than both.)
    """
    from .conv_stacks import conv_stack_logits, conv_stacks_apply
    stacks = [i for i, op in enumerate(ops) if isinstance(op, ConvStackExcitation)]
    if len(stacks) > 1 and conv_stacks_apply([ops[i] for i in stacks], v):
        others = [i for i in range(len(ops)) if i not in stacks]
        logits = torch.cat([conv_stack_logits([ops[i] for i in stacks], v)] +
                           [ops[i].logits(v)[None] for i in others])
        weights = weights[stacks + others]
    else:
        logits = torch.stack([op.logits(v) for op in ops])
    return weighted_sum(torch.sigmoid(logits), weights)
