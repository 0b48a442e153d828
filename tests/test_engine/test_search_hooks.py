"""GenotypeLoggerHook and AlphaPlotHook on a stand-in runner."""
import json
import logging
import os
import types

import pytest
from _tools import record_figures
import torch
from mmengine.logging import MessageHub
from PIL import Image

from mmsase.engine.hooks import AlphaPlotHook, GenotypeLoggerHook
from mmsase.models.sase.supernet import ArchitectureParams
from mmsase.models.search_space import EDGES


def fake_runner(work_dir, name):
    architecture = ArchitectureParams()
    model = types.SimpleNamespace(architecture=architecture, derive=architecture.derive)
    return types.SimpleNamespace(
        model=model, epoch=0, work_dir=str(work_dir),
        message_hub=MessageHub.get_instance(name),
        logger=logging.getLogger(name), hooks=[])


def test_hooks_write_genotype_history_and_plot(tmp_path, caplog, monkeypatch):
    from mmsase.engine.hooks import alpha_plot_hook
    plots, real_write = [], alpha_plot_hook.atomic_write

    def recording_write(path, data):
        plots.append(path)
        real_write(path, data)

    monkeypatch.setattr(alpha_plot_hook, 'atomic_write', recording_write)
    runner = fake_runner(tmp_path, 'genotype_hook_test')
    genotype_hook, plot_hook = GenotypeLoggerHook(), AlphaPlotHook()
    runner.hooks = [genotype_hook, plot_hook]
    plot_hook.before_train(runner)
    for epoch in range(2):
        runner.epoch = epoch
        with torch.no_grad():
            runner.model.architecture.alpha[0, 4] += 1.0  # cs drifts to gap_gmp
        with caplog.at_level(logging.INFO, logger='genotype_hook_test'):
            genotype_hook.after_train_epoch(runner)
        plot_hook.after_train_epoch(runner)

    with open(tmp_path / 'genotype.json') as f:
        saved = json.load(f)
    assert saved['cs'] == 'gap_gmp' and saved['_epoch'] == 2
    assert {k for k in saved if not k.startswith('_')} == {
        'cs', 'ce1', 'ce2', 'ss1', 'ss2', 'se'}
    history = runner.message_hub.get_info('sase/alpha_history')
    assert history['epochs'] == [1, 2]
    assert torch.tensor(history['probabilities']).shape == (2, 6, 7)
    assert 'genotype:' in caplog.text and '*gap_gmp' in caplog.text
    with Image.open(tmp_path / 'alpha_evolution.png') as image:
        assert image.format == 'PNG'
    assert sorted(os.listdir(tmp_path)) == ['alpha_evolution.png', 'genotype.json',
                                            'genotype.png']
    assert plots == [str(tmp_path / 'alpha_evolution.png')] * 2  # redrawn atomically


def test_plot_has_one_panel_per_edge_and_one_line_per_op(monkeypatch):
    from mmsase.engine.hooks import alpha_plot_hook
    figures = record_figures(monkeypatch, alpha_plot_hook)
    op_names = ArchitectureParams().op_names
    g = torch.Generator().manual_seed(0)
    probabilities = [torch.rand(6, 7, generator=g).softmax(-1).tolist() for _ in range(3)]
    png = alpha_plot_hook.plot_alpha_history(
        dict(epochs=[1, 2, 3], probabilities=probabilities), op_names)
    assert png.startswith(b'\x89PNG')
    panels = figures[0].axes
    assert len(panels) == 6
    for i, (edge, panel) in enumerate(zip(EDGES, panels)):
        assert panel.get_title().startswith(edge)
        assert [line.get_label() for line in panel.lines] == list(op_names[edge])
        for j, line in enumerate(panel.lines):
            assert list(line.get_xdata()) == [1, 2, 3]
            assert list(line.get_ydata()) == [p[i][j] for p in probabilities]


def test_plot_hook_needs_genotype_hook(tmp_path):
    with pytest.raises(RuntimeError, match='GenotypeLoggerHook'):
        AlphaPlotHook().before_train(fake_runner(tmp_path, 'plot_hook_alone'))
