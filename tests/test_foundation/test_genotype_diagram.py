"""The genotype diagram: the undecided rule, the drawing, and where the search and
tools/derive_genotype.py write it."""
import json
import logging
import os
import os.path as osp

import pytest
import torch
from _tools import ROOT, record_figures, run_tool
from PIL import Image

from _search_toys import single_thread  # noqa: F401 (fixture)
from mmsase.models.sase.supernet import ArchitectureParams
from mmsase.models.search_space import EDGES
from mmsase.visualization.genotype_diagram import (DEFAULT_MARGIN, draw_genotype,
                                                   edge_decisions)

OP_NAMES = ArchitectureParams().op_names


def clear_rows():
    """Every edge with a clear winner: its first op at 0.4, the others at 0.1."""
    return [[0.4] + [0.1] * 6 for _ in EDGES]


def test_close_top_two_weights_make_an_edge_undecided():
    rows = clear_rows()
    # the demo's ce2 after 6 epochs: seven weights within 0.140-0.145
    rows[EDGES.index('ce2')] = [0.1445, 0.1420, 0.1401, 0.1430, 0.1441, 0.1412, 0.1451]
    decisions = {d.edge: d for d in edge_decisions(rows, OP_NAMES)}
    ce2 = decisions['ce2']
    assert not ce2.decided
    assert (ce2.op, ce2.runner_up) == ('affine', 'fc')
    assert ce2.weight == pytest.approx(0.1451) and ce2.runner_up_weight == pytest.approx(0.1445)
    for edge in EDGES:
        if edge != 'ce2':
            assert decisions[edge].decided and decisions[edge].op == OP_NAMES[edge][0]
            assert decisions[edge].weight == pytest.approx(0.4)


def test_margin_is_an_absolute_difference_of_softmax_weights():
    rows = clear_rows()
    rows[0] = [0.30, 0.29, 0.41 / 5, 0.41 / 5, 0.41 / 5, 0.41 / 5, 0.41 / 5]  # lead 0.01
    assert DEFAULT_MARGIN == 0.01
    assert edge_decisions(rows, OP_NAMES, margin=0.009)[0].decided
    assert not edge_decisions(rows, OP_NAMES, margin=0.011)[0].decided
    assert all(d.decided for d in edge_decisions(rows, OP_NAMES, margin=0.0))
    # a tensor of softmax(alpha) works as well as nested lists
    architecture = ArchitectureParams()
    decisions = edge_decisions(architecture.probabilities().detach(), OP_NAMES)
    assert [d.edge for d in decisions] == list(EDGES)
    assert not any(d.decided for d in decisions)  # alpha ~ N(0, 1e-6): nothing decided
    with pytest.raises(ValueError, match='6 rows'):
        edge_decisions(rows[:5], OP_NAMES)
    with pytest.raises(ValueError, match='margin'):
        edge_decisions(rows, OP_NAMES, margin=-1)


def test_undecided_edges_are_drawn_dashed_with_both_candidates(monkeypatch):
    from mmsase.visualization import genotype_diagram
    figures = record_figures(monkeypatch, genotype_diagram)
    rows = clear_rows()
    rows[EDGES.index('ce2')] = [0.1445, 0.1420, 0.1401, 0.1430, 0.1441, 0.1412, 0.1451]
    png = draw_genotype(rows, OP_NAMES)
    assert png.startswith(b'\x89PNG')
    axes = figures[0].axes[0]
    labels = [t.get_text() for t in axes.texts]
    assert 'ce2: undecided\naffine 0.1451 ≈ fc 0.1445' in labels
    assert 'cs: gap 0.400' in labels and 'se: conv_3 0.400' in labels
    for node in ('x', 'z', 'm1', 'm2', "x'", 'u1', 'u2', 'h', 'ms', 'y'):
        assert node in labels
    styles = [a.arrow_patch.get_linestyle() for a in axes.texts if hasattr(a, 'arrow_patch')
              and a.arrow_patch is not None and a.arrow_patch.get_linewidth() > 2]
    assert len(styles) == 6 and styles.count('--') == 1


def fake_runner(work_dir, name):
    import types

    from mmengine.logging import MessageHub
    architecture = ArchitectureParams()
    model = types.SimpleNamespace(architecture=architecture, derive=architecture.derive)
    return types.SimpleNamespace(
        model=model, epoch=0, work_dir=str(work_dir),
        message_hub=MessageHub.get_instance(name),
        logger=logging.getLogger(name), hooks=[])


def test_hook_writes_the_diagram_and_logs_undecided_edges(tmp_path, caplog):
    from mmsase.engine.hooks import GenotypeLoggerHook
    runner = fake_runner(tmp_path, 'genotype_diagram_hook')
    with torch.no_grad():
        runner.model.architecture.alpha[0, 4] += 1.0  # cs: gap_gmp, clearly
    with caplog.at_level(logging.INFO, logger='genotype_diagram_hook'):
        GenotypeLoggerHook().after_train_epoch(runner)
    assert 'undecided (top two softmax weights within 0.01): ce1 (' in caplog.text
    assert 'cs (' not in caplog.text.split('undecided')[-1]
    with Image.open(tmp_path / 'genotype.png') as image:
        assert image.format == 'PNG' and image.size == (1300, 580)
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
    other = tmp_path / 'other'
    GenotypeLoggerHook(diagram=None).after_train_epoch(fake_runner(other, 'no_diagram'))
    assert sorted(os.listdir(other)) == ['genotype.json']


@pytest.mark.usefixtures('single_thread')
def test_search_runner_writes_the_diagram(tmp_path):
    """One epoch of a real search (the toy set of the search tests) through the Runner."""
    from mmengine.runner import Runner

    from _search_toys import ToyImages, search_optim_wrapper_cfg, tiny_search_cfg, toy_loader

    half = dict(type='mmsase.HalfSplit', dataset=ToyImages(8), seed=0)
    runner = Runner(
        model=tiny_search_cfg(), work_dir=str(tmp_path), experiment_name='diagram_search',
        train_dataloader=toy_loader(dict(half, part=0)),
        train_cfg=dict(type='mmsase.BilevelEpochBasedTrainLoop', max_epochs=1,
                       arch_dataloader=toy_loader(dict(half, part=1))),
        optim_wrapper=search_optim_wrapper_cfg(),
        custom_hooks=[dict(type='mmsase.GenotypeLoggerHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        default_scope='mmpretrain', log_level='WARNING')
    runner.train()
    with Image.open(osp.join(tmp_path, 'genotype.png')) as image:
        assert image.format == 'PNG'
    assert osp.isfile(osp.join(tmp_path, 'genotype.json'))


def test_derive_genotype_tool_writes_the_diagram_beside_the_json(tmp_path, monkeypatch):
    architecture = ArchitectureParams()
    with torch.no_grad():
        architecture.alpha.normal_(0, 1, generator=torch.Generator().manual_seed(0))
        architecture.alpha[2] = 0.0  # ce2: all seven equal -> undecided
    checkpoint = tmp_path / 'epoch_3.pth'
    torch.save({'state_dict': {'architecture.alpha': architecture.alpha.detach()},
                'meta': {'epoch': 3}}, checkpoint)
    out = run_tool('tools/derive_genotype.py', str(checkpoint), threads=1)
    assert 'diagram written to' in out.stdout
    with open(tmp_path / 'epoch_3_genotype.json') as f:
        assert json.load(f)['_epoch'] == 3
    with Image.open(tmp_path / 'epoch_3_genotype.png') as image:
        assert image.format == 'PNG'
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'derive_genotype', osp.join(ROOT, 'tools/derive_genotype.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr('sys.argv', ['derive_genotype.py', str(checkpoint), '--out',
                                     str(tmp_path / 'g.png')])
    with pytest.raises(ValueError, match='would be overwritten by the diagram'):
        tool.main()
    assert not osp.exists(tmp_path / 'g.png')
