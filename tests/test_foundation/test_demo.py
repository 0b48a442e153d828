"""The README's quick check of the main job: `tools/demo.py` with one epoch per stage runs the
search, the plain / SE / SASE comparison and the detector, and prints their results."""
import json
import os.path as osp
import re

import pytest
from _tools import ROOT, run_tool

EDGES = ('cs', 'ce1', 'ce2', 'ss1', 'ss2', 'se')


@pytest.mark.slow
def test_demo_runs_every_stage(tmp_path):
    work_dir = str(tmp_path / 'demo')
    out = run_tool('tools/demo.py', '--work-dir', work_dir, '--search-epochs', '1',
                   '--train-epochs', '1', '--detection-epochs', '1').stdout

    # [1/3] the search: its genotype printed and written, the α plot drawn
    printed = dict(re.findall(r'(\w+)=(\w+)', re.search(r'searched genotype: (.*)', out)[1]))
    assert tuple(printed) == EDGES, out
    with open(osp.join(work_dir, 'search', 'genotype.json')) as f:
        written = {k: v for k, v in json.load(f).items() if not k.startswith('_')}
    assert written == printed
    assert osp.getsize(osp.join(work_dir, 'search', 'alpha_evolution.png')) > 0

    # [2/3] the accuracy table: five models, top-1 in percent; SEM's decision plot
    rows = re.findall(r'^  (plain|\+ SE|\+ SEM|\+ SASE \(searched\)|\+ SASE \(paper genotype\))'
                      r'\s+(\d+\.\d\d)$', out, re.M)
    assert [name for name, _ in rows] == ['plain', '+ SE', '+ SEM', '+ SASE (searched)',
                                          '+ SASE (paper genotype)'], out
    assert osp.getsize(osp.join(work_dir, 'SEM', 'sem_decisions.png')) > 0
    assert all(0 <= float(acc) <= 100 for _, acc in rows)

    # [3/3] the detector, scored by pycocotools
    scores = re.search(r'COCO box mAP \(pycocotools\) on .*instances_val\.json: '
                       r'mAP (\d\.\d{3}), mAP@50 (\d\.\d{3})', out)
    assert scores, out
    assert 0 <= float(scores[1]) <= float(scores[2]) <= 1
    assert re.search(r'demo finished in [\d.]+ min', out)


def test_classification_alone_leaves_out_the_searched_row(tmp_path, monkeypatch, capsys):
    """Without a search in the work dir there is no searched genotype: no row claims one."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('demo', osp.join(ROOT, 'tools', 'demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    commands = []
    monkeypatch.setattr(demo, 'run', lambda args, log: commands.append(args) or
                        'accuracy/top1: 50.0')
    rows = demo.classification(str(tmp_path), 1, genotype_file=None)
    assert [name for name, _ in rows] == ['plain', '+ SE', '+ SEM', '+ SASE (paper genotype)']
    assert not any('--genotype' in args for args in commands)
    assert 'the searched-SASE row is left out' in capsys.readouterr().out
