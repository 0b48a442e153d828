"""mmsase.analysis.stats against intervals computed by hand on given numbers."""
import math
import sys

import pytest

from mmsase.analysis.stats import mean_ci, paired_diff_ci, t_quantile


def test_mean_ci_of_three_runs_by_hand():
    # the paper genotype's demo row in three runs of the same command (issue 20):
    # mean 290.28 / 3 = 96.76; deviations -1.48, -0.65, 2.13; squares 2.1904 + 0.4225 +
    # 4.5369 = 7.1498; s² = 7.1498 / 2 = 3.5749, s = 1.890741; s / √3 = 1.091620;
    # t_{0.975, 2} = 4.302653; half width 4.302653 × 1.091620 = 4.696862
    ci = mean_ci([95.28, 96.11, 98.89])
    assert ci.n == 3
    assert ci.mean == pytest.approx(96.76, abs=1e-9)
    assert ci.std == pytest.approx(1.890741, abs=1e-6)
    assert ci.half_width == pytest.approx(4.696862, abs=1e-5)
    assert (ci.low, ci.high) == pytest.approx((92.063138, 101.456862), abs=1e-5)
    assert ci.excludes_zero()  # all above 0: a sanity check of the property


def test_paired_difference_by_hand_is_narrower_than_the_two_intervals():
    a, b = [97.0, 96.5, 98.0], [96.0, 96.0, 97.0]
    # differences 1.0, 0.5, 1.0: mean 0.833333; deviations 1/6, -1/3, 1/6; s² = (1/36 + 1/9
    # + 1/36) / 2 = 1/12, s = 0.288675; s / √3 = 1/6; half width 4.302653 / 6 = 0.717109
    diff = paired_diff_ci(a, b)
    assert diff.mean == pytest.approx(5 / 6, abs=1e-9)
    assert diff.half_width == pytest.approx(0.717109, abs=1e-6)
    assert diff.excludes_zero()  # 0.116 .. 1.550
    # the separate intervals overlap widely, the paired one does not hold 0
    ca, cb = mean_ci(a), mean_ci(b)
    assert ca.low < cb.high
    assert diff.low > 0


def test_other_levels_and_degenerate_cases():
    # 90 %: t_{0.95, 3} = 2.353363; values 1, 2, 3, 4: mean 2.5, s² = 5/3, s/√4 = 0.645497
    ci = mean_ci([1, 2, 3, 4], level=0.90)
    assert ci.half_width == pytest.approx(2.353363 * 0.645497, abs=1e-5)
    one = mean_ci([97.5])
    assert one.mean == 97.5 and math.isnan(one.half_width) and not one.excludes_zero()
    same = paired_diff_ci([9.375, 9.375], [9.375, 9.375])
    assert same.half_width == 0 and not same.excludes_zero()
    with pytest.raises(ValueError):
        paired_diff_ci([1, 2], [1])
    with pytest.raises(ValueError):
        mean_ci([])


def test_t_table_without_scipy(monkeypatch):
    monkeypatch.setitem(sys.modules, 'scipy.stats', None)  # import fails
    assert t_quantile(0.975, 2) == 4.303
    assert t_quantile(0.975, 30) == 2.042
    with pytest.raises(ImportError):
        t_quantile(0.95, 3)
    monkeypatch.undo()
    assert t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
