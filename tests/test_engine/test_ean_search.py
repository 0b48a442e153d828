"""EAN's controller search run: outputs, exact resume, accuracy cache, the authors' defaults, the
tool end to end on a tiny CIFAR ResNet supernet with a shared SE module on the digits, held-out
top-1 against a count written here, and the held-out part of every shipped supernet config
disjoint from its training part."""
import json
import os.path as osp
import sys

import pytest
import torch
from _tools import load_tool

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

    # the first 2 steps in this process, the resumption as a user would
    tool = load_tool('tools/ean_search.py')
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


def test_defaults_are_the_authors_values(tmp_path):
    """EAN_search.py: 300 steps of 3 codes, the MLP controller on a zero input with T = 5,
    Adam lr 5e-2, EMA 0.95, R = top-1 + 2·unplugged − 54, RND and replay from step 10 over 30
    steps; what an ``ean_search`` dict without these keys runs with."""
    from mmsase.engine.ean_search import SEARCH_DEFAULTS
    assert SEARCH_DEFAULTS == dict(
        steps=300, codes_per_step=3, temperature=5.0, controller_mlp=(20, 50), lr=5e-2,
        optimizer='Adam', baseline_decay=0.95, reward_lambda=2.0, reward_offset=54.0,
        rnd=True, replay=True, replay_start=10, replay_buffer=30, seed=0, plot_interval=10)
    run = EANSearchRun(str(tmp_path), ToyAccuracy(), (3, 4, 6, 3), log=lambda line: None)
    search = run.search
    assert search.controller.num_blocks == 16 and search.controller.temperature == 5.0
    assert search.controller.mlp_sizes == (20, 50)
    assert [tuple(p.shape) for p in search.controller.parameters()] == [
        (50, 20), (50, ), (32, 50), (32, )]
    assert type(search.optimizer) is torch.optim.Adam
    assert search.optimizer.defaults['lr'] == 5e-2
    assert search.rnd is not None and search.rnd_optimizer.defaults['lr'] == 5e-2
    assert search.codes_per_step == 3 and search.baseline_decay == 0.95
    assert search.replay_start == 10 and search.buffer.max_size == 30
    assert run.settings['steps'] == 300
    code = ConnectionCode.parse((4, 11, 19, 3), (3, 4, 6, 3))  # 9 of 16 plugged
    assert code_reward(75.0, code, run.settings['reward_lambda'],
                       run.settings['reward_offset']) == pytest.approx(75.0 + 2 * 7 / 16 - 54)


# --------------------------------------------------------------------------------------------
# Held-out accuracy on a given supernet, against a count written here.
# --------------------------------------------------------------------------------------------
def build_scope_dataset(cfg):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return DATASETS.build(cfg)


def independent_top1(model, images, labels, mean, std):
    """Backbone → GAP → the head's FC on all images at once, normalised by the config's
    mean / std; the percentage of argmax == label."""
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1) for v in (mean, std))
    x = (images.float() - mean) / std
    with torch.no_grad():
        features = model.backbone(x)[-1].mean((2, 3))
        logits = features @ model.head.fc.weight.t() + model.head.fc.bias
    return 100.0 * int((logits.argmax(1) == labels).sum()) / len(labels)


def save_supernet(cfg, checkpoint: str):
    """The config's supernet (seed 0) with BN running statistics of its own, so that eval mode
    matters and the codes' accuracies differ, saved to ``checkpoint``; returned."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return model


def all_codes(stage_blocks):
    import itertools
    bits = list(itertools.product((0, 1), repeat=sum(stage_blocks)))
    return [ConnectionCode.parse(''.join(map(str, b)), stage_blocks) for b in bits]


def test_heldout_top1_and_the_tool_against_an_independent_count(tmp_path, monkeypatch,
                                                                capsys):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from mmsase.engine.ean_search import heldout_top1
    config = supernet_config(tmp_path / 'supernet.py')
    cfg = Config.fromfile(config)
    checkpoint = str(tmp_path / 'supernet.pth')
    model = save_supernet(cfg, checkpoint).eval()

    dataset = build_scope_dataset(cfg.ean_search.heldout_dataloader.dataset)
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([item['inputs'] for item in items])
    labels = torch.cat([item['data_samples'].gt_label for item in items])
    assert 150 < len(labels) < 250  # an eighth of the 1437 training digits
    mean, std = cfg.data_preprocessor.mean, cfg.data_preprocessor.std
    backbone = model.backbone
    expected = {}
    for code in all_codes(backbone.stage_blocks):
        backbone.set_connection_code(code)
        expected[code.to_string()] = independent_top1(model, images, labels, mean, std)
    assert len(set(expected.values())) > 2  # the code changes the supernet's accuracy

    # batches of 50 (the last one smaller): a count over images, not a mean over batches
    loader_cfg = dict(cfg.ean_search.heldout_dataloader, batch_size=50)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = Runner.build_dataloader(loader_cfg, seed=0)
    assert len(labels) % 50 != 0
    for code in all_codes(backbone.stage_blocks):
        backbone.set_connection_code(code)
        assert heldout_top1(model, loader) == pytest.approx(expected[code.to_string()])
    assert not model.training

    # the tool: the supernet from the checkpoint, in eval mode, each code's accuracy
    tool = load_tool('tools/ean_search.py')
    monkeypatch.setattr(sys, 'argv', ['ean_search.py', config, checkpoint, '--work-dir',
                                      str(tmp_path / 'search'), '--steps', '2'])
    tool.main()
    capsys.readouterr()
    history = json.loads((tmp_path / 'search' / 'search_log.json').read_text())
    scored = [(c, a) for e in history for c, a in zip(e['codes'], e['accuracies'])]
    assert len(scored) == 6
    assert len({expected[code] for code, _ in scored}) > 1  # a tool that ignored the code fails
    for code, accuracy in scored:
        assert accuracy == pytest.approx(expected[code]), code


@pytest.mark.parametrize('config', ['configs/demo/ean_supernet_resnet20_se_digits.py',
                                    'configs/ean/resnet164_ean_se_supernet_cifar10.py',
                                    'configs/ean/resnet50_ean_sge_supernet_in1k.py'])
def test_heldout_part_is_disjoint_from_the_supernets_training_part(config, request):
    """The supernet trains on the training set less the held-out part the search scores on
    (the authors: ImageNet train minus the first 100 images of each class); together they
    are the whole training set, and the held-out images are not augmented."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    train, heldout = cfg.train_dataloader.dataset, cfg.ean_search.heldout_dataloader.dataset
    parts = list(train.datasets) if train.type == 'ConcatDataset' else [train]
    wrapped = [p.dataset for p in parts] + [heldout.dataset]
    if 'cifar10' in config:  # the generated sets of tests/conftest.py in place of the real
        for d in wrapped:
            d.update(data_root=request.getfixturevalue('cifar10_root'), verify_md5=False)
    elif 'in1k' in config:
        root = request.getfixturevalue('imagenet_root')  # 4 images per class: split 1 / 3
        for d in wrapped:
            d.update(data_root=root, classes=osp.join(root, 'meta', 'classes.txt'))
        for split in parts + [heldout]:
            assert split.num_per_class == 100
            split.num_per_class = 1
    # the same images under every part: only the pipelines differ
    source = {k: v for k, v in wrapped[-1].items() if k != 'pipeline'}
    assert all({k: v for k, v in d.items() if k != 'pipeline'} == source for d in wrapped)
    assert not any('Random' in t['type'] for t in heldout.dataset.pipeline)

    held = build_scope_dataset(heldout)
    held.full_init()
    trained = []
    for part in parts:
        built = build_scope_dataset(part)
        built.full_init()
        trained += built.indices.tolist()
    held = held.indices.tolist()
    assert len(held) > 0 and len(trained) > 0
    assert not set(held) & set(trained)
    assert len(set(trained)) == len(trained)
    full = build_scope_dataset(source)
    assert sorted(held + trained) == list(range(len(full)))
