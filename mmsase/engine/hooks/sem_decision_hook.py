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
from mmengine.dist import all_gather, get_world_size, is_main_process
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
    """Keeps the decision vectors ``w`` ``(B, 3)`` of every SEM block of ``model``, one row per
    image, while recording (between :meth:`start` and :meth:`stop`, or inside ``with``).

    :meth:`means` gives ``{block name: [mean w_FC, mean w_ECA, mean w_IE]}`` over the images
    seen by every process. With several processes, pass it the size of the data set: a
    sampler that pads the data set to a multiple of the number of processes (mmengine's
    ``DefaultSampler``) gives some images to two processes, and only one of their rows is kept.
    """

    def __init__(self, model: nn.Module):
        self.blocks = sem_blocks(model)
        if not self.blocks:
            raise ValueError('the model has no SEM block (mmsase.SEM) whose decision could be '
                             'recorded')
        self.rows = None
        self.handles = []

    def start(self) -> 'SEMDecisionRecorder':
        self.stop()
        self.rows = [[] for _ in self.blocks]
        self.handles = [block.decision.register_forward_hook(self._hook(index))
                        for index, (_, block) in enumerate(self.blocks)]
        return self

    def _hook(self, index: int):
        def hook(module, args, output):
            self.rows[index].append(output.detach().to(torch.float64))
        return hook

    def stop(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self) -> 'SEMDecisionRecorder':
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _local_rows(self) -> List[torch.Tensor]:
        device = next(self.blocks[0][1].parameters()).device
        return [torch.cat(rows) if rows else
                torch.zeros(0, len(SEM_OPERATORS), dtype=torch.float64, device=device)
                for rows in self.rows]

    def decisions(self, dataset_size: Optional[int] = None) -> List[torch.Tensor]:
        """Every block's rows ``(N, 3)`` of ``w``, one per image, over all processes.

        The rows of the processes are put in the order of mmengine's ``collect_results``
        (image ``i`` of rank 0, of rank 1, ..., then image ``i + 1`` of each), which is the
        data set's order (or its shuffled order) as ``DefaultSampler`` deals it out; then only
        the first ``dataset_size`` rows are kept, dropping the images the sampler repeated at
        the end to give every rank as many (``None``: keep them all).
        """
        if self.rows is None:
            raise RuntimeError('the recorder was never started')
        local = self._local_rows()
        if get_world_size() > 1:
            local = _gather_interleaved(local)
        if dataset_size is not None:
            local = [rows[:dataset_size] for rows in local]
        return local

    def means(self, dataset_size: Optional[int] = None
              ) -> Tuple[Dict[str, List[float]], int]:
        """``({block name: [FC, ECA, IE] means}, number of images)``, over every process's
        images; ``dataset_size``: see :meth:`decisions`."""
        rows = self.decisions(dataset_size)
        if not min(len(r) for r in rows) > 0:
            raise RuntimeError('no image passed through the SEM blocks while recording')
        means = [r.mean(0).cpu().tolist() for r in rows]
        return {name: row for (name, _), row in zip(self.blocks, means)}, len(rows[0])


def _gather_interleaved(local: List[torch.Tensor]) -> List[torch.Tensor]:
    """Each block's rows from every process, interleaved as ``collect_results`` orders them:
    row ``i`` of rank 0, of rank 1, ..., then row ``i + 1``; a rank with fewer rows (a sampler
    that does not pad) is skipped in the last round. Two collectives for all the blocks."""
    lengths = torch.tensor([len(rows) for rows in local], dtype=torch.long,
                           device=local[0].device)
    all_lengths = torch.stack(all_gather(lengths)).cpu()  # (world, blocks)
    totals = all_lengths.sum(1)
    if int(totals.max()) == 0:  # no process saw an image (the same answer on every rank)
        return local
    flat = torch.cat(local)
    padded = flat.new_zeros(int(totals.max()), flat.shape[1])
    padded[:len(flat)] = flat
    per_rank = [gathered[:int(total)].split(counts.tolist())
                for gathered, total, counts in zip(all_gather(padded), totals, all_lengths)]
    result = []
    for block in range(len(local)):
        parts = [rank_rows[block] for rank_rows in per_rank]
        longest = max(len(part) for part in parts)
        stacked = torch.stack([torch.cat([part, part.new_zeros(longest - len(part),
                                                                part.shape[1])])
                               for part in parts], dim=1)  # (longest, world, 3)
        present = (torch.arange(longest)[:, None] < all_lengths[:, block][None, :])
        result.append(stacked.reshape(-1, stacked.shape[-1])[
            present.reshape(-1).to(stacked.device)])
    return result


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
    extra forward pass. With several processes every image of the data set counts once:
    the images that mmengine's ``DefaultSampler`` repeats so that every rank gets as many are
    dropped, as mmengine's evaluator drops them (``num_images`` is the data set's size). ::

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

    @staticmethod
    def _dataset_size(runner, split: str) -> Optional[int]:
        """The size of the loop's data set, so that the images a distributed sampler repeats
        to even out the ranks count once (as mmengine's evaluator drops them); None if the
        loop has no sized data set (then every image seen counts)."""
        try:
            loader = runner.val_dataloader if split == 'val' else runner.test_dataloader
            return len(loader.dataset)
        except (AttributeError, TypeError, RuntimeError):
            return None

    def _write(self, runner, split: str) -> None:
        self.recorder.stop()
        layers, num_images = self.recorder.means(self._dataset_size(runner, split))
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
