"""Confidence intervals over seeds: Student's t interval of a mean and of a paired difference.

For ``n`` values with mean ``m`` and sample standard deviation ``s`` (``n - 1`` in the
denominator), the two-sided interval at ``level`` is ``m ± t_{(1+level)/2, n-1} · s / √n``.
Two models trained with the same seeds are compared through the per-seed differences
``a_i - b_i`` (a paired interval): the seed's share of the noise (data order, initialisation)
cancels, so the interval is usually much narrower than the two separate ones suggest.
"""
import math
from typing import NamedTuple, Sequence

#: ``t_{0.975, df}`` for df = 1..30, used when scipy is not installed (level 0.95 only).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


class Interval(NamedTuple):
    """``mean ± half_width`` over ``n`` values; ``half_width`` is NaN when ``n < 2``."""
    mean: float
    half_width: float
    n: int
    std: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0 (False when undefined)."""
        return not math.isnan(self.half_width) and (self.low > 0 or self.high < 0)


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f'degrees of freedom must be >= 1, got {df}')
    try:
        from scipy.stats import t
    except ImportError:
        if abs(q - 0.975) > 1e-12:
            raise ImportError('without scipy only the 0.975 quantile (a 95 % interval) is '
                              'available')
        return T_975[df - 1] if df <= len(T_975) else 1.960 + 2.4 / df
    return float(t.ppf(q, df))


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``values`` with its two-sided t interval at ``level``."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError('no values')
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, math.nan, 1, math.nan)
    std = math.sqrt(sum((v - mean)**2 for v in values) / (n - 1))
    return Interval(mean, t_quantile((1 + level) / 2, n - 1) * std / math.sqrt(n), n, std)


def paired_diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``a_i - b_i`` with its t interval; ``a`` and ``b`` paired by position (seed)."""
    if len(a) != len(b):
        raise ValueError(f'paired values need equal lengths, got {len(a)} and {len(b)}')
    return mean_ci([x - y for x, y in zip(a, b)], level)
