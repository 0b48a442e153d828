"""tools/analysis/benchmark_search.py runs and prints every figure the README quotes (tiny
batch, one round: a check that the command works, not a measurement)."""
import re

import pytest
from _tools import run_tool


@pytest.mark.slow
def test_benchmark_search_prints_all_figures():
    out = run_tool('tools/analysis/benchmark_search.py', '--batch-size', '4', '--rounds', '1',
                   '--iters', '1').stdout
    number = r'(\d+\.\d+)'
    medians = {}
    for step in ('derived', 'supernet', 'first_order', 'second_order'):
        match = re.search(rf'^{step}\s+{number}\s+{number}\s+(\d+)$', out, re.M)
        assert match, f'no line for {step}:\n{out}'
        seconds, per_second, _ = match.groups()
        assert float(seconds) > 0
        assert float(per_second) == pytest.approx(1 / float(seconds), rel=0.02, abs=0.01)
        medians[step] = float(seconds)
    for name in ('supernet / derived', 'first order / supernet', 'second / first order',
                 'memory second / first'):
        assert re.search(rf'^{name}\s+{number}x  \(goal <= [\d.]+x: (met|missed)\)$', out,
                         re.M), f'no line for {name}:\n{out}'
    passes = re.search(rf'alpha_only {number}, weights_only {number}, both {number}', out)
    assert passes and all(float(s) > 0 for s in passes.groups()), out
    excess = re.search(rf'^second - 2.5 x first = ([+-]\d+\.\d+) s = (.*)$', out, re.M)
    assert excess, out
    terms = dict(re.findall(r'([^,]+?) ([+-]\d+\.\d+)(?:, |$)', excess.group(2)))
    assert list(terms) == ['(P_w - P_a)/2', 'P_b - P_w', '-1.5 o', 'outside the passes'], out
    assert float(excess.group(1)) == pytest.approx(
        medians['second_order'] - 2.5 * medians['first_order'], abs=0.005)
    assert sum(map(float, terms.values())) == pytest.approx(float(excess.group(1)), abs=0.003)
    p_a, p_w, p_b = map(float, passes.groups())
    assert float(terms['(P_w - P_a)/2']) == pytest.approx((p_w - p_a) / 2, abs=0.002)
    assert float(terms['P_b - P_w']) == pytest.approx(p_b - p_w, abs=0.002)
    bound = re.search(rf'^passes one after the other: second / first >= .* = {number}x$', out,
                      re.M)
    assert bound, out

    def bound_at(p_w, p_a, supernet):  # a ratio of affine functions: extremes at corners
        o = supernet - p_w
        return (3 * p_w + 2 * p_a + o) / (p_w + p_a + o)

    # the printed seconds are rounded to 1 ms, a large share of these tiny steps' times
    half_ms = (-5e-4, 5e-4)
    corners = [bound_at(p_w + a, p_a + b, medians['supernet'] + c)
               for a in half_ms for b in half_ms for c in half_ms]
    assert min(corners) - 5e-4 <= float(bound.group(1)) <= max(corners) + 5e-4, out
