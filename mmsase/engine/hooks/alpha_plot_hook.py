"""A plot of how the architecture weights evolve during a search."""
import io
import math
import os.path as osp

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmsase.registry import HOOKS
from mmsase.utils.atomic_io import atomic_write
from .genotype_hook import GenotypeLoggerHook, alpha_history, search_model


@HOOKS.register_module()
class AlphaPlotHook(Hook):
    """After every train epoch, draw ``softmax(alpha)`` against the epoch as a PNG in the
    work dir: one panel per edge, one line per operation.

    It plots the history recorded by :class:`GenotypeLoggerHook`, which must be configured
    too (it runs first: this hook's priority is lower)::

        custom_hooks = [dict(type='mmsase.GenotypeLoggerHook'),
                        dict(type='mmsase.AlphaPlotHook')]

    Args:
        filename (str): name of the PNG in the work dir.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, filename: str = 'alpha_evolution.png') -> None:
        self.filename = filename

    def before_train(self, runner) -> None:
        if not any(isinstance(hook, GenotypeLoggerHook) for hook in runner.hooks):
            raise RuntimeError('AlphaPlotHook plots the history GenotypeLoggerHook '
                               "records; add dict(type='mmsase.GenotypeLoggerHook') to "
                               'custom_hooks')

    def after_train_epoch(self, runner) -> None:
        if is_main_process():
            architecture = search_model(runner).architecture
            png = plot_alpha_history(alpha_history(runner), architecture.op_names,
                                     architecture.space.name, architecture.space.excluded)
            atomic_write(osp.join(runner.work_dir, self.filename), png)


def plot_alpha_history(history: dict, op_names: dict, space_name: str = 'SASE',
                       excluded=()) -> bytes:
    """PNG bytes of a grid of panels (one per edge, in ``op_names``' order; 3 columns for
    SASE's 6 edges, 5 for AutoLA's 10) of ``softmax(alpha)``; each title names the operation
    the genotype would take now (never one of ``excluded``, e.g. AutoLA's ``none``)."""
    columns = 3 if len(op_names) <= 6 else 5
    rows = math.ceil(len(op_names) / columns)
    figure = Figure(figsize=(5 * columns, 4 * rows), dpi=100)
    FigureCanvasAgg(figure)
    epochs = history['epochs']
    for index, edge in enumerate(op_names):
        axes = figure.add_subplot(rows, columns, index + 1)
        for op_index, name in enumerate(op_names[edge]):
            weights = [probabilities[index][op_index]
                       for probabilities in history['probabilities']]
            axes.plot(epochs, weights, marker='o' if len(epochs) < 20 else None,
                      markersize=3, label=name)
        if epochs:
            latest = history['probabilities'][-1][index]
            derived = max((name for name in op_names[edge] if name not in excluded),
                          key=lambda name: latest[op_names[edge].index(name)])
            axes.set_title(f'{edge} (now: {derived})')
        else:
            axes.set_title(edge)
        axes.set_xlabel('epoch')
        axes.set_ylabel('softmax weight')
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc='upper left')
    figure.suptitle(f'{space_name} search: architecture weights per edge')
    # fixed margins: tight_layout would double the drawing time
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.07, top=0.9,
                           wspace=0.22, hspace=0.35)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    return buffer.getvalue()
