"""EAN's controller search run: outputs, exact resume, accuracy cache, and the tool end to end
on a tiny CIFAR ResNet supernet with a shared SE module on the digits."""
import importlib.util
import json
import os.path as osp
import sys

import pytest
import torch

from mmsase.engine.ean_search import EANSearchRun, code_reward
from mmsase.models.ean.code import ConnectionCode
from mmsase.utils.checkpoint import CheckpointError

STAGES = (2, 1, 3)
PNG = b'\x89PNG\r\n\x1a\n'


class ToyAccuracy:
    """A stand-in supernet: plugging block 0 and 3 helps, block 5 hurts; counts its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, code: ConnectionCode) -> float:
        self.calls.append(code.to_string())
        bits = code.flat
        return 60.0 + 8.0 * bits[0] + 5.0 * bits[3] - 6.0 * bits[5] - 0.5 * sum(bits)


SETTINGS = dict(steps=4, replay_start=1, replay_buffer=3, seed=3, plot_interval=2,
                controller_mlp=(20, 50))


def run(work_dir, steps, resume=False, **changes):
    accuracy = ToyAccuracy()
    search = EANSearchRun(str(work_dir), accuracy, STAGES, dict(SETTINGS, **changes),
                          log=lambda line: None)
    if resume:
        assert search.resume()
    search.run(steps)
    return search, accuracy


def test_run_writes_its_outputs(tmp_path):
    search, accuracy = run(tmp_path, 4)
    assert len(accuracy.calls) == len(set(accuracy.calls))  # each code scored once
    history = json.loads((tmp_path / 'search_log.json').read_text())
    assert [e['step'] for e in history] == [1, 2, 3, 4]
    rewards = {}
    for entry in history:
        assert len(entry['codes']) == 3 and len(entry['plug_probabilities']) == 6
        for code, acc, reward in zip(entry['codes'], entry['accuracies'], entry['rewards']):
            parsed = ConnectionCode.parse(code, STAGES)
            assert acc == ToyAccuracy()(parsed)
            assert reward == pytest.approx(acc + 2.0 * parsed.fraction_unplugged - 54.0)
            rewards[code] = reward
    best_code = max(rewards, key=rewards.get)
    best = ConnectionCode.load(tmp_path / 'best_code.json', STAGES)
    assert best.to_string() == best_code
    saved = json.loads((tmp_path / 'best_code.json').read_text())
    assert saved['reward'] == pytest.approx(rewards[best_code])
    likely = ConnectionCode.load(tmp_path / 'most_likely_code.json', STAGES)
    assert likely.flat == search.search.controller.most_likely()
    assert likely.to_string() == history[-1]['most_likely']
    assert (tmp_path / 'plug_probabilities.png').read_bytes().startswith(PNG)
    assert (tmp_path / 'search_state.pth').is_file()
    assert code_reward(50.0, ConnectionCode.parse('10-0-111', STAGES), 2.0, 54.0) == \
        pytest.approx(50.0 + 2.0 * 2 / 6 - 54.0)


def test_resume_continues_exactly(tmp_path):
    whole, _ = run(tmp_path / 'whole', 4)
    run(tmp_path / 'split', 2)
    resumed, accuracy = run(tmp_path / 'split', 4, resume=True)
    assert [e['codes'] for e in resumed.history] == [e['codes'] for e in whole.history]
    assert [e['baseline'] for e in resumed.history] == [e['baseline'] for e in whole.history]
    for a, b in zip(resumed.search.controller.parameters(),
                    whole.search.controller.parameters()):
        assert torch.equal(a, b)
    # codes scored before the interruption come from the saved cache
    assert not set(accuracy.calls) & {c for e in whole.history[:2] for c in e['codes']}
    assert (tmp_path / 'split' / 'best_code.json').read_text() == \
        (tmp_path / 'whole' / 'best_code.json').read_text()

    with pytest.raises(ValueError, match=r"lr=0.05 \(now 0.1\)"):
        run(tmp_path / 'split', 5, resume=True, lr=0.1)
    with pytest.raises(ValueError, match='unknown ean_search settings'):
        EANSearchRun(str(tmp_path), ToyAccuracy(), STAGES, dict(step=3))


def supernet_config(path, heldout_parts=8):
    path.write_text(f"""
_base_ = '{osp.abspath('configs/demo/cifar_resnet20_digits.py')}'
model = dict(backbone=dict(depth=8, attention=dict(type='mmsase.SE', reduction=4),
                           attention_shared=True))
ean_search = dict(
    heldout_dataloader=dict(
        batch_size=256, num_workers=0,
        dataset=dict(type='mmsase.SplitDataset', part=0, num_parts={heldout_parts}, seed=0,
                     dataset=dict(type='mmsase.Digits32', split='train',
                                  pipeline=[dict(type='PackInputs')])),
        sampler=dict(type='DefaultSampler', shuffle=False)),
    steps=3, replay_start=1, plot_interval=1)
""")
    return str(path)


def test_tool_end_to_end(tmp_path, monkeypatch, capsys):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from _tools import run_tool
    config = supernet_config(tmp_path / 'supernet.py')
    cfg = Config.fromfile(config)
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    checkpoint = str(tmp_path / 'supernet.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), checkpoint)
    work_dir = tmp_path / 'search'

    tool = load_tool()  # the first 2 steps in this process, the resumption as a user would
    monkeypatch.setattr(sys, 'argv', ['ean_search.py', config, checkpoint, '--work-dir',
                                      str(work_dir), '--steps', '2'])
    tool.main()
    assert 'step 2/2' in capsys.readouterr().out
    out = run_tool('tools/ean_search.py', config, checkpoint, '--work-dir', str(work_dir),
                   '--resume', threads=1)
    assert 'resumed from' in out.stdout and 'step 3/3' in out.stdout and 'best code' in out.stdout
    assert 'step 1/' not in out.stdout
    history = json.loads((work_dir / 'search_log.json').read_text())
    assert [e['step'] for e in history] == [1, 2, 3]
    for entry in history:
        assert all(0 <= acc <= 100 for acc in entry['accuracies'])
        assert all(len(code) == 3 for code in entry['codes'])  # depth 8: 1 block per stage
    best = ConnectionCode.load(work_dir / 'best_code.json', (1, 1, 1))
    assert best.to_string() in {c for e in history for c in e['codes']}
    assert (work_dir / 'plug_probabilities.png').read_bytes().startswith(PNG)
    assert 'step 3/3' in (work_dir / 'search.log').read_text()

    # the code file drives a backbone
    model.backbone.set_connection_code(ConnectionCode.load(work_dir / 'best_code.json'))

    with pytest.raises(CheckpointError, match='missing.pth'):
        tool.build_supernet(cfg, str(tmp_path / 'missing.pth'))
    torch.save(dict(state_dict=dict(list(model.state_dict().items())[:-1])), checkpoint)
    with pytest.raises(CheckpointError, match='does not fit the model of the config'):
        tool.build_supernet(cfg, checkpoint)


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'ean_search_tool', osp.join(osp.dirname(__file__), '..', '..', 'tools', 'ean_search.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
