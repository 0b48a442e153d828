"""The README's quick check of the main job: `tools/demo.py` with one epoch per stage runs the
search, the plain / SE / SASE comparison, SEM's pair on ResNet-29 and the detector, and prints
their results."""
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

    # [1/3] the search: each edge's margin, the genotype chosen by perturbation printed and
    # written (the argmax one beside it), the α plot drawn
    chosen = re.search(r'chosen by perturbation .*?: (.*)', out)[1]
    printed = dict(re.findall(r'(\w+)=(\w+)', chosen))
    assert tuple(printed) == EDGES, out
    with open(osp.join(work_dir, 'search', 'genotype_pt.json')) as f:
        written = json.load(f)
    assert {k: v for k, v in written.items() if not k.startswith('_')} == printed
    assert written['_method'] == 'pt'
    decisions = re.findall(r'^    (\w+)\s+\w+\s+\d\.\d{3}\s+\w+\s+\d\.\d{3}\s+[+-]\d\.\d{3}\s+'
                           r'(decided|undecided)$', out, re.M)
    assert [edge for edge, _ in decisions] == list(EDGES), out
    assert osp.isfile(osp.join(work_dir, 'search', 'genotype.json'))
    assert osp.getsize(osp.join(work_dir, 'search', 'alpha_evolution.png')) > 0

    # [2/3] the accuracy table: ResNet-20 plain / SE / SASE, then SEM's pair on the bottleneck
    # ResNet-29 (where its authors use it), top-1 in percent; SEM's decision plot
    rows = re.findall(r'^  (plain|\+ SE|\+ SASE \(searched\)|\+ SASE \(paper genotype\)'
                      r'|plain ResNet-29|\+ SEM ResNet-29)\s+(\d+\.\d\d)$', out, re.M)
    assert [name for name, _ in rows] == ['plain', '+ SE', '+ SASE (searched)',
                                          '+ SASE (paper genotype)', 'plain ResNet-29',
                                          '+ SEM ResNet-29'], out
    assert osp.getsize(osp.join(work_dir, 'SEM_ResNet_29', 'sem_decisions.png')) > 0
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
    assert [name for name, _ in rows] == ['plain', '+ SE', '+ SASE (paper genotype)',
                                          'plain ResNet-29', '+ SEM ResNet-29']
    assert not any('--genotype' in args for args in commands)
    # SEM runs only in the bottleneck ResNet-29, against the same network without it
    configs = [osp.basename(args[1]) for args in commands]
    assert configs[-2:] == ['cifar_resnet29_digits.py', 'cifar_resnet29_sem_digits.py']
    assert 'cifar_resnet20_sem_digits.py' not in configs
    out = capsys.readouterr().out
    assert 'the searched-SASE row is left out' in out
    assert osp.join(osp.relpath(str(tmp_path), ROOT), 'SEM_ResNet_29', 'sem_decisions.png') in out
