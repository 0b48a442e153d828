"""The planted benchmarks: data that carries exactly the planted statistic, the test-only
noise operation, and the sanity tool end to end on a short run."""
import pytest
import torch

from _search_toys import single_thread  # noqa: F401 (fixture)
from _tools import load_tool

pytestmark = pytest.mark.usefixtures('single_thread')


def skewness(x, dims):
    centred = x - x.mean(dims, keepdim=True)
    return centred.pow(3).mean(dims) / centred.pow(2).mean(dims).pow(1.5)


def batch(data, n=256, seed=0):
    from mmsase.analysis.planted import planted_batch
    return planted_batch(data, n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('data', ['std', 'skew', 'max'])
def test_channel_data_have_equal_means_and_the_planted_difference(data):
    x, labels = batch(data)
    assert x.shape == (256, 8, 8, 8) and set(labels.tolist()) == {0, 1}
    torch.testing.assert_close(x.mean((2, 3)), torch.zeros(256, 8), atol=1e-5, rtol=0)
    std = x.pow(2).mean((2, 3)).sqrt()  # the mean is 0
    per_class = [x[labels == k] for k in (0, 1)]
    if data == 'std':
        # class 1's channels are 10 % larger on average; within a class they jitter
        ratio = std[labels == 1].mean() / std[labels == 0].mean()
        assert ratio.item() == pytest.approx(1.05 / 0.95, rel=0.02)
        return
    torch.testing.assert_close(std, torch.ones(256, 8), atol=1e-4, rtol=0)
    if data == 'skew':
        skews = [skewness(part, (2, 3)).mean().item() for part in per_class]
        assert skews[0] > 0.3 and skews[1] < -0.3
    else:  # max: heavier tails (kurtosis) and a larger maximum for class 1
        kurtosis = [part.pow(4).mean().item() for part in per_class]
        maxima = [part.amax((2, 3)).mean().item() for part in per_class]
        assert kurtosis[1] > kurtosis[0] + 0.5 and maxima[1] > maxima[0] + 0.2


def test_spatial_data_are_skewed_across_channels_in_the_class_quadrant():
    x, labels = batch('spatial_skew')
    torch.testing.assert_close(x.mean(1), torch.zeros(256, 8, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.pow(2).mean(1), torch.ones(256, 8, 8), atol=1e-4, rtol=0)
    skew = skewness(x, 1)  # (B, 8, 8)
    top_left, bottom_right = skew[:, :4, :4].mean((1, 2)), skew[:, 4:, 4:].mean((1, 2))
    assert (top_left[labels == 0] > bottom_right[labels == 0]).float().mean() > 0.85
    assert (bottom_right[labels == 1] > top_left[labels == 1]).float().mean() > 0.85
    # each channel's distribution over the positions does not tell the classes apart
    per_channel = skewness(x, (2, 3))
    assert abs(per_channel[labels == 0].mean() - per_channel[labels == 1].mean()) < 0.05


def test_data_are_determined_by_the_generator():
    first, second = batch('skew', 16, seed=3), batch('skew', 16, seed=3)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], batch('skew', 16, seed=4)[0])


def test_noise_operation_is_added_to_every_set_and_removed_after():
    from mmsase.analysis.planted import NOISE_OP, NoiseOp, noise_operation
    from mmsase.models.search_space import OP_SETS
    from mmsase.models.sase.supernet import ArchitectureParams
    with noise_operation():
        arch = ArchitectureParams()
        assert all(NOISE_OP in ops for ops in OP_SETS.values())
    assert all(NOISE_OP not in ops for ops in OP_SETS.values())
    assert arch.alpha.shape == (6, 8) and arch.op_names['cs'][-1] == NOISE_OP
    x = torch.randn(2, 8, 5, 5)
    assert NoiseOp(8, 'channel_squeeze')(x).shape == (2, 8, 1, 1)
    assert NoiseOp(8, 'spatial_squeeze')(x).shape == (2, 1, 5, 5)
    out = NoiseOp(8, 'spatial_excitation')(x[:, :1])
    assert out.shape == (2, 1, 5, 5) and 0 < out.min() and out.max() < 1
    assert not torch.equal(NoiseOp(8, 'channel_squeeze')(x), NoiseOp(8, 'channel_squeeze')(x))


def test_the_recommended_search_never_picks_the_noise_operation():
    """A short run of the noise benchmark (every edge scored), with PT selection."""
    from mmsase.analysis.planted import NOISE_OP, run_planted
    result = run_planted('noise', 'recommended_pt', seed=0, steps=48, epochs=4)
    assert len(result.winners) == 6 and NOISE_OP not in result.winners.values()
    assert result.recovered


def test_sanity_tool_prints_the_table_and_the_last_line(capsys):
    tool = load_tool('tools/analysis/search_sanity.py')
    try:  # a 16-step search proves nothing: exit status 1 unless it happened to recover
        tool.main(['--bench', 'skew', '--methods', 'darts_1st', '--method', 'darts_1st',
                   '--seeds', '0', '--steps', '16', '--jobs', '1'])
        found = 1
    except SystemExit as exit_:
        assert exit_.code == 1
        found = 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f'recovered {found}/1'
    row = next(line.split() for line in lines if line.startswith('skew'))
    assert row[1:3] == ['darts_1st', '0'] and row[3].startswith('cs=')
    assert row[4] == ('yes' if found else 'NO')
    with pytest.raises(SystemExit):
        tool.parse_args(['--method', 'warmup', '--methods', 'darts_1st'])
