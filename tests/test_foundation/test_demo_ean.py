"""The EAN stage of the demo (`tools/demo.py --only ean`): supernet, search, retraining table."""
import importlib.util
import json
import os
import os.path as osp
import re
import sys

import pytest
from _tools import ROOT, run_tool


def load_demo_ean():
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        spec = importlib.util.spec_from_file_location(
            'demo_ean', osp.join(ROOT, 'tools', 'demo_ean.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(osp.join(ROOT, 'tools'))
    return module


def test_stage_runs_the_three_steps_in_order(tmp_path, monkeypatch, capsys):
    demo = load_demo_ean()
    commands = []

    def run(args, log):
        commands.append(args)
        if args[0] == 'tools/ean_search.py':  # what the search would write
            work_dir = args[args.index('--work-dir') + 1]
            os.makedirs(work_dir)
            with open(osp.join(work_dir, 'best_code.json'), 'w') as f:
                json.dump(dict(code='001011001', plugged=4, heldout_top1=90.5, step=15), f)
            with open(osp.join(work_dir, 'search_log.json'), 'w') as f:
                json.dump([dict(most_likely='001011011')], f)
        return 'accuracy/top1: 97.5'

    monkeypatch.setattr(demo, 'measure', lambda models: [(100, [1.0, 2.0])] * len(models))
    demo.ean(str(tmp_path), run, lambda text, name: 97.5, supernet_epochs=2, search_steps=7,
             train_epochs=3)
    tools = [args[0] for args in commands]
    assert tools == ['tools/train.py', 'tools/ean_search.py'] + ['tools/train.py'] * 3
    assert 'train_cfg.max_epochs=2' in commands[0]
    best = osp.join(str(tmp_path), 'ean', 'search', 'best_code.json')
    assert commands[1][2].endswith('epoch_2.pth') and commands[1][-2:] == ['--steps', '7']
    assert '--connection-code' not in commands[2] + commands[3]
    assert commands[4][commands[4].index('--connection-code') + 1] == best
    out = capsys.readouterr().out
    assert 'searched code (highest reward seen): 001011001' in out
    assert re.search(r'shared SE, searched 001011001\s+97.50\s+100\s+1.00\s+2.00', out), out


@pytest.mark.slow
def test_demo_ean_one_epoch(tmp_path):
    work_dir = str(tmp_path / 'demo')
    out = run_tool('tools/demo.py', '--only', 'ean', '--work-dir', work_dir,
                   '--search-epochs', '1', '--train-epochs', '1').stdout
    code = re.search(r'searched code \(highest reward seen\): ([01]{9})', out)[1]
    rows = re.findall(r'^  (plain ResNet-20|shared SE, all plugged|shared SE, searched [01]+)'
                      r'\s+(\d+\.\d\d)\s+([\d,]+)\s+[\d.]+\s+[\d.]+$', out, re.M)
    assert [name for name, _, _ in rows] == ['plain ResNet-20', 'shared SE, all plugged',
                                             f'shared SE, searched {code}'], out
    assert rows[1][2] == rows[2][2]  # the shared modules: the same parameters for any code
    assert osp.getsize(osp.join(work_dir, 'ean', 'search', 'plug_probabilities.png')) > 0
