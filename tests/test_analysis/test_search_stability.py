"""Search stability: the measures of mmsase.analysis.stability on α given by hand, and
tools/analysis/search_stability.py on two tiny searches (seeds 0 and 1), its numbers checked
against the α of their checkpoints."""
import importlib.util
import json
import math
import os.path as osp

import pytest
import torch
from _tools import ROOT

from mmsase.analysis.stability import op_names, stability
from mmsase.models.search_space import EDGES

# ResNet-8 supernet, 64 digits split into two halves of 32: one bi-level iteration an epoch
TINY = ['--epochs', '1', '--cfg-options', 'model.architecture.backbone.depth=8',
        'train_dataloader.dataset.dataset.indices=64',
        'train_cfg.arch_dataloader.dataset.dataset.indices=64', 'val_dataloader.dataset.indices=32']


def one_hot_alpha(columns, logit=3.0):
    alpha = torch.zeros(len(EDGES), 7)
    for e, j in enumerate(columns):
        alpha[e, j] = logit
    return alpha.tolist()


def test_agreement_and_entropy_by_hand():
    names = op_names()
    runs = [one_hot_alpha([0, 0, 0, 0, 0, 0]), one_hot_alpha([0, 0, 0, 0, 1, 1]),
            one_hot_alpha([0, 0, 0, 2, 2, 2])]
    # α row (ln 2, 0, ..., 0): softmax (2/8, 1/8 x 6); entropy 0.25 ln 4 + 0.75 ln 8 = 1.906155
    runs[0][0] = [math.log(2)] + [0.0] * 6
    s = stability(runs, seeds=[0, 1, 2])
    assert s['winners'][1]['ss2'] == names['ss2'][1]
    assert s['edges']['cs']['agreement'] == 1.0 and s['edges']['cs']['modal'] == names['cs'][0]
    assert s['edges']['ss2']['agreement'] == pytest.approx(1 / 3)  # three different winners
    assert s['edges']['ss1']['agreement'] == pytest.approx(2 / 3)
    assert s['edges']['ss2']['modal'] == names['ss2'][0]  # a tie goes to the first op
    assert s['edges']['cs']['counts'] == {names['cs'][0]: 3}
    # pairs (0,1): 4 of 6 edges equal, (0,2): 3 of 6, (1,2): 3 of 6 -> mean 10/18
    assert s['pairwise_agreement'] == pytest.approx(10 / 18)
    assert s['distinct_genotypes'] == 3
    assert s['edges']['cs']['entropy'][0] == pytest.approx(1.906155, abs=1e-6)
    assert s['edges']['cs']['margin'][0] == pytest.approx(0.125)
    # one-hot logit 3: p = e³ / (e³ + 6), the rest 1 / (e³ + 6)
    p, q = math.e**3 / (math.e**3 + 6), 1 / (math.e**3 + 6)
    assert s['edges']['se']['entropy'][1] == pytest.approx(-p * math.log(p) - 6 * q *
                                                           math.log(q))
    assert s['max_entropy'] == pytest.approx(math.log(7))
    with pytest.raises(ValueError):
        stability(runs, seeds=[0, 1])


@pytest.mark.slow
def test_two_tiny_searches_against_their_checkpoints(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'search_stability', osp.join(ROOT, 'tools', 'analysis', 'search_stability.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    work_dir = str(tmp_path / 'stability')
    tool.main(['--seeds', '0', '1', '--work-dir', work_dir, '--jobs', '2', *TINY])
    out = capsys.readouterr().out
    with open(osp.join(work_dir, 'stability.json')) as f:
        written = json.load(f)
    assert osp.getsize(osp.join(work_dir, 'stability.png')) > 0
    assert osp.isfile(osp.join(work_dir, 'stability.csv'))

    from mmsase.utils.checkpoint import load_checkpoint_file
    names = op_names()
    alphas = [load_checkpoint_file(osp.join(work_dir, 'runs', f'seed_{s}', 'epoch_1.pth'))
              ['state_dict']['architecture.alpha'].double() for s in (0, 1)]
    assert not torch.equal(alphas[0], alphas[1])  # the seed changes the search
    winners = [{edge: names[edge][int(a[e].argmax())] for e, edge in enumerate(EDGES)}
               for a in alphas]
    assert written['winners'] == winners
    for s in (0, 1):  # the search's own genotype.json agrees
        with open(osp.join(work_dir, 'runs', f'seed_{s}', 'genotype.json')) as f:
            assert {k: v for k, v in json.load(f).items() if k in EDGES} == winners[s]
    same = [winners[0][edge] == winners[1][edge] for edge in EDGES]
    assert written['pairwise_agreement'] == pytest.approx(sum(same) / 6)
    assert f'mean pairwise agreement: {sum(same) / 6 * 100:.0f} %' in out
    for e, edge in enumerate(EDGES):
        p = [a[e].softmax(-1) for a in alphas]
        entropies = [float(-(q * q.log()).sum()) for q in p]
        assert written['edges'][edge]['entropy'] == pytest.approx(entropies, abs=1e-9)
        assert written['edges'][edge]['agreement'] == (1.0 if same[e] else 0.5)
        top = [q.topk(2).values for q in p]
        assert written['edges'][edge]['margin'] == pytest.approx(
            [float(t[0] - t[1]) for t in top], abs=1e-9)
    # one epoch moves α little: every edge stays close to uniform
    assert all(e < math.log(7) + 1e-9 and e > math.log(7) - 0.05 for edge in EDGES
               for e in written['edges'][edge]['entropy'])
    assert list(written['edges']) == list(EDGES)
