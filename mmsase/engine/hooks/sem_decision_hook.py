"""Which excitation operator each SEM block chooses: the mean decision vector over a data set.

Every :class:`~mmsase.models.plugins.SEM` block computes, per image, a decision
``w = σ(Linear(GAP(x))) ∈ (0, 1)³`` that scales its three operators (FC, ECA, IE) and passes it
through its ``decision`` sub-module. :class:`SEMDecisionRecorder` hooks those sub-modules and
averages ``w`` over the images; :class:`SEMDecisionHook` does so over each validation (and test)
epoch and writes ``sem_decisions.json`` and ``sem_decisions.png`` (a heat map, one row per SEM
block in network order, one column per operator) into the work dir.
``tools/analysis/sem_decisions.py`` runs the same hook on a trained checkpoint.
"""
import io
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.dist import all_reduce, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmsase.models.plugins.sem import SEM, SEM_OPERATORS
from mmsase.registry import HOOKS
from mmsase.utils.atomic_io import atomic_write


def sem_blocks(model: nn.Module) -> List[Tuple[str, SEM]]:
    """``(name, block)`` of every SEM block of ``model`` (unwrapped), in network order."""
    if is_model_wrapper(model):
        model = model.module
    return [(name, module) for name, module in model.named_modules() if isinstance(module, SEM)]


class SEMDecisionRecorder:
    """Sums the decision vectors ``w`` ``(B, 3)`` of every SEM block of ``model`` while
    recording (between :meth:`start` and :meth:`stop`, or inside ``with``).

    :meth:`means` gives ``{block name: [mean w_FC, mean w_ECA, mean w_IE]}`` over every image
    seen (summed over the processes when distributed).
    """

    def __init__(self, model: nn.Module):
        self.blocks = sem_blocks(model)
        if not self.blocks:
            raise ValueError('the model has no SEM block (mmsase.SEM) whose decision could be '
                             'recorded')
        self.sums = self.counts = None
        self.handles = []

    def start(self) -> 'SEMDecisionRecorder':
        device = next(self.blocks[0][1].parameters()).device
        self.sums = torch.zeros(len(self.blocks), len(SEM_OPERATORS), dtype=torch.float64,
                                device=device)
        self.counts = torch.zeros(len(self.blocks), dtype=torch.float64, device=device)
        self.stop()
        self.handles = [block.decision.register_forward_hook(self._hook(index))
                        for index, (_, block) in enumerate(self.blocks)]
        return self

    def _hook(self, index: int):
        def hook(module, args, output):
            w = output.detach()
            self.sums[index] += w.to(self.sums).sum(0)
            self.counts[index] += w.shape[0]
        return hook

    def stop(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self) -> 'SEMDecisionRecorder':
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def means(self) -> Tuple[Dict[str, List[float]], int]:
        """``({block name: [FC, ECA, IE] means}, number of images)``."""
        sums, counts = self.sums.clone(), self.counts.clone()
        all_reduce(sums, op='sum')
        all_reduce(counts, op='sum')
        if not counts.min() > 0:
            raise RuntimeError('no image passed through the SEM blocks while recording')
        means = (sums / counts[:, None]).cpu().tolist()
        return {name: row for (name, _), row in zip(self.blocks, means)}, int(counts[0])


def plot_sem_decisions(layers: Dict[str, List[float]], title: str = '') -> bytes:
    """PNG bytes of a heat map of ``layers`` (name → [FC, ECA, IE] in [0, 1]): one row per
    layer, top to bottom in the given order, each cell annotated; lines between stages.

    The figure is 600 × (120 + 25·rows) pixels."""
    names = list(layers)
    values = [layers[name] for name in names]
    rows = len(names)
    inches = 1.2 + 0.25 * rows  # 0.3 below the map, 0.9 above it for the labels and title
    figure = Figure(figsize=(6, inches), dpi=100)
    FigureCanvasAgg(figure)
    bottom, height = 0.3 / inches, 0.25 * rows / inches
    axes = figure.add_axes((0.3, bottom, 0.45, height))
    image = axes.imshow(values, cmap='viridis', vmin=0, vmax=1, aspect='auto',
                        interpolation='nearest')
    labels = [name[len('backbone.'):] if name.startswith('backbone.') else name
              for name in names]
    axes.set_yticks(range(rows), labels, fontsize=7)
    axes.set_xticks(range(len(SEM_OPERATORS)), SEM_OPERATORS)
    axes.xaxis.tick_top()
    for row, triple in enumerate(values):
        for column, value in enumerate(triple):
            axes.text(column, row, f'{value:.2f}', ha='center', va='center', fontsize=6,
                      color='black' if value > 0.6 else 'white')
    stages = [label.split('.')[0] for label in labels]
    for row in range(1, rows):
        if stages[row] != stages[row - 1]:
            axes.axhline(row - 0.5, color='white', linewidth=1.5)
    colorbar_axes = figure.add_axes((0.8, bottom, 0.03, height))
    figure.colorbar(image, cax=colorbar_axes, label='mean decision weight')
    figure.suptitle(title or 'SEM: mean decision per block', fontsize=9, y=1 - 0.15 / inches)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    return buffer.getvalue()


def write_sem_decisions(out_dir: str, record: dict, json_name: str = 'sem_decisions.json',
                        png_name: str = 'sem_decisions.png') -> Tuple[str, str]:
    """Write ``record`` (with its ``layers``) as JSON and its heat map as PNG, atomically;
    return the two paths."""
    json_path, png_path = osp.join(out_dir, json_name), osp.join(out_dir, png_name)
    what = f'{record["split"]} set, {record["num_images"]} images'
    if record.get('epoch') is not None:
        what += f', epoch {record["epoch"]}'
    atomic_write(json_path, json.dumps(record, indent=2) + '\n')
    atomic_write(png_path, plot_sem_decisions(record['layers'],
                                              f'SEM: mean decision w per block ({what})'))
    return json_path, png_path


@HOOKS.register_module()
class SEMDecisionHook(Hook):
    """After every validation and test epoch, write the mean SEM decision of every block over
    the epoch's images: ``<work_dir>/sem_decisions.json`` ::

        {"operators": ["FC", "ECA", "IE"], "split": "val", "epoch": 164, "iter": 64124,
         "num_images": 10000,
         "layers": {"backbone.layer1.0.sem": [0.53, 0.61, 0.47], ...}}

    (``epoch`` and ``iter`` are the training progress, ``null`` outside training) and
    ``<work_dir>/sem_decisions.png``, its heat map. It only listens during those epochs: no
    extra forward pass. ::

        custom_hooks = [dict(type='mmsase.SEMDecisionHook')]

    Args:
        json_name, png_name: file names in the work dir.
        metadata (dict, optional): more keys for the JSON (the tool adds the checkpoint).
    """

    priority = 'LOW'

    def __init__(self, json_name: str = 'sem_decisions.json',
                 png_name: str = 'sem_decisions.png', metadata: Optional[dict] = None):
        self.json_name = json_name
        self.png_name = png_name
        self.metadata = dict(metadata or {})
        self.recorder = None
        self.training = False

    def before_run(self, runner) -> None:
        self.recorder = SEMDecisionRecorder(runner.model)

    def before_train(self, runner) -> None:
        self.training = True

    def after_train(self, runner) -> None:
        self.training = False

    def before_val_epoch(self, runner) -> None:
        self.recorder.start()

    def before_test_epoch(self, runner) -> None:
        self.recorder.start()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, 'test')

    def _write(self, runner, split: str) -> None:
        self.recorder.stop()
        layers, num_images = self.recorder.means()
        record = dict(operators=list(SEM_OPERATORS), split=split,
                      epoch=runner.epoch if self.training else None,
                      iter=runner.iter if self.training else None, num_images=num_images,
                      **self.metadata, layers=layers)
        overall = [sum(row[i] for row in layers.values()) / len(layers)
                   for i in range(len(SEM_OPERATORS))]
        runner.logger.info(
            f'SEM decision over {num_images} {split} images, mean of {len(layers)} blocks: '
            + ', '.join(f'{op} {v:.3f}' for op, v in zip(SEM_OPERATORS, overall))
            + f' (per block: {self.json_name}, {self.png_name})')
        if is_main_process():
            write_sem_decisions(runner.work_dir, record, self.json_name, self.png_name)
