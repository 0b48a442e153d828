"""Seeing SEM's switch: a few iterations of bottleneck ResNet-29 + SEM on generated CIFAR-10
through mmengine's Runner with configs/sem/resnet164_sem_cifar10.py (depth and data swapped),
then SEMDecisionHook's and tools/analysis/sem_decisions.py's JSON and PNG, checked against a
mean computed here from the network's weights."""
import importlib.util
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
from _tools import record_figures
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

import mmsase
from mmsase.models.plugins import SEM

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EPOCHS = 4
NUM_BLOCKS = 9  # ResNet-29: 3 bottlenecks per stage


@pytest.fixture(scope='module')
def trained(cifar10_root, tmp_path_factory):
    """The Runner after EPOCHS epochs of 5 iterations (40 images, batch 8), validated on the
    20 test images after epochs 2 and 4."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = Config.fromfile(mmsase.config_path('sem/resnet164_sem_cifar10.py'))
    cfg.model.backbone.depth = 29
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=8, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=cifar10_root, verify_md5=False)
    # no augmentation, a gentler lr: the loss of the same 40 images must fall
    cfg.train_dataloader.dataset.pipeline = [dict(type='PackInputs')]
    cfg.optim_wrapper.optimizer.lr = 0.02
    cfg.train_cfg.update(max_epochs=EPOCHS, val_interval=2)
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=EPOCHS)
    cfg.update(work_dir=str(tmp_path_factory.mktemp('sem_train')), log_level='WARNING',
               experiment_name='sem_decision_train', randomness=dict(seed=0))
    runner = Runner.from_cfg(cfg)
    runner.train()
    yield runner
    torch.set_num_threads(threads)


def test_training_lowers_the_loss(trained):
    losses = trained.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == EPOCHS * 5
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.8 * first, losses


def cifar_test_images(root, mean, std):
    """The CIFAR test images, read from the pickle here and normalised with the config's
    mean and std: (N, 3, 32, 32) float64."""
    with open(osp.join(root, 'cifar-10-batches-py', 'test_batch'), 'rb') as f:
        batch = pickle.load(f, encoding='latin1')
    images = torch.tensor(np.asarray(batch['data']), dtype=torch.float64).view(-1, 3, 32, 32)
    mean = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    return (images - mean) / std


def expected_decisions(model, images):
    """Mean over the images of w = σ(Linear(GAP(x))) of every SEM block, from each block's
    input and its switch weights (float64), independently of the hook."""
    inputs = {}
    blocks = {name: m for name, m in model.named_modules() if isinstance(m, SEM)}
    handles = [m.register_forward_hook(
        lambda m, args, out, name=name: inputs.__setitem__(name, args[0].double()))
        for name, m in blocks.items()]
    model.eval()
    with torch.no_grad():
        model.extract_feat(images.float())
    for handle in handles:
        handle.remove()
    means = {}
    for name, block in blocks.items():
        z = inputs[name].mean((2, 3))
        w = torch.sigmoid(z @ block.switch_fc.weight.double().T
                          + block.switch_fc.bias.double())
        means[name] = w.mean(0).tolist()
    return means


def check_record(record, model, images, split):
    assert record['operators'] == ['FC', 'ECA', 'IE'] and record['split'] == split
    assert record['num_images'] == len(images) == 20
    names = list(record['layers'])
    assert names == [f'backbone.layer{s}.{i}.sem' for s in (1, 2, 3) for i in range(3)]
    expected = expected_decisions(model, images)
    assert list(expected) == names
    for name in names:
        values = record['layers'][name]
        assert len(values) == 3 and all(0 < v < 1 for v in values), name
        np.testing.assert_allclose(values, expected[name], rtol=1e-5, atol=1e-6)
    # the blocks do not all decide alike (a constant written out would not pass)
    assert len({tuple(round(v, 4) for v in values)
                for values in record['layers'].values()}) == NUM_BLOCKS


def check_png(path):
    with Image.open(path) as image:
        assert image.format == 'PNG'
        assert image.size == (600, 120 + 25 * NUM_BLOCKS)
        pixels = np.asarray(image.convert('L'))
    assert pixels.std() > 10  # something is drawn


def normalisation(cfg):
    return cfg.data_preprocessor.mean, cfg.data_preprocessor.std


def test_hook_writes_the_mean_decision_of_every_block(trained, cifar10_root):
    work_dir = trained.work_dir
    with open(osp.join(work_dir, 'sem_decisions.json')) as f:
        record = json.load(f)
    assert record['epoch'] == EPOCHS and record['iter'] == EPOCHS * 5
    images = cifar_test_images(cifar10_root, *normalisation(trained.cfg))
    check_record(record, trained.model, images, 'val')
    check_png(osp.join(work_dir, 'sem_decisions.png'))
    assert not [f for f in os.listdir(work_dir) if f.endswith('.tmp')]


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'sem_decisions_tool', osp.join(ROOT, 'tools', 'analysis', 'sem_decisions.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_tool_computes_the_same_from_the_checkpoint(trained, cifar10_root, tmp_path):
    tool = load_tool()
    checkpoint = osp.join(trained.work_dir, f'epoch_{EPOCHS}.pth')
    out_dir = str(tmp_path / 'decisions')
    options = [f'{key}={value}' for loader in ('val_dataloader', 'test_dataloader')
               for key, value in ((f'{loader}.dataset.data_root', cifar10_root),
                                  (f'{loader}.dataset.verify_md5', False),
                                  (f'{loader}.batch_size', 7), (f'{loader}.num_workers', 0),
                                  (f'{loader}.persistent_workers', False))]
    tool.main(['configs/sem/resnet164_sem_cifar10.py', checkpoint, '--out-dir', out_dir,
               '--split', 'test', '--cfg-options', 'model.backbone.depth=29',
               'experiment_name=sem_decision_tool', 'log_level=WARNING', *options])
    with open(osp.join(out_dir, 'sem_decisions.json')) as f:
        record = json.load(f)
    assert record['epoch'] is None and record['checkpoint'] == osp.abspath(checkpoint)
    images = cifar_test_images(cifar10_root, *normalisation(trained.cfg))
    check_record(record, trained.model, images, 'test')
    check_png(osp.join(out_dir, 'sem_decisions.png'))
    with open(osp.join(trained.work_dir, 'sem_decisions.json')) as f:
        during_training = json.load(f)['layers']
    for name, values in record['layers'].items():  # batches of 7 vs 8: the same means
        np.testing.assert_allclose(values, during_training[name], rtol=1e-5)


def test_a_model_without_sem_is_refused(trained, tmp_path):
    from mmsase.engine.hooks import SEMDecisionHook
    runner = type('R', (), dict(model=torch.nn.Sequential(torch.nn.Linear(2, 2))))()
    with pytest.raises(ValueError, match='no SEM block'):
        SEMDecisionHook().before_run(runner)
    # the tool says so before it reads any data (data/cifar10 does not exist here)
    checkpoint = osp.join(trained.work_dir, f'epoch_{EPOCHS}.pth')
    with pytest.raises(ValueError, match=r'resnet164_cifar10\.py builds no SEM block'):
        load_tool().main(['configs/sem/resnet164_cifar10.py', checkpoint, '--out-dir',
                          str(tmp_path), '--cfg-options', 'experiment_name=sem_tool_no_sem',
                          'log_level=WARNING', 'val_dataloader.dataset.data_root=/nowhere'])


def test_plot_draws_one_row_per_block_in_order(monkeypatch):
    from mmsase.engine.hooks import sem_decision_hook
    figures = record_figures(monkeypatch, sem_decision_hook)
    g = torch.Generator().manual_seed(0)
    layers = {f'backbone.layer{s}.{i}.sem': torch.rand(3, generator=g).tolist()
              for s in (1, 2, 3) for i in range(2)}
    png = sem_decision_hook.plot_sem_decisions(layers, 'title')
    assert png.startswith(b'\x89PNG')
    heat_map = figures[0].axes[0]
    np.testing.assert_allclose(heat_map.images[0].get_array(), list(layers.values()))
    assert [t.get_text() for t in heat_map.get_yticklabels()] == [
        name[len('backbone.'):] for name in layers]
    assert [t.get_text() for t in heat_map.get_xticklabels()] == ['FC', 'ECA', 'IE']
    assert len(heat_map.lines) == 2  # the stage boundaries
