"""Logging the architecture of a search (SASE's, AutoLA's) after every epoch."""
import os.path as osp
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmsase.registry import HOOKS
from mmsase.utils.atomic_io import atomic_write
from mmsase.visualization.genotype_diagram import (DEFAULT_MARGIN, can_draw,
                                                   draw_architecture, edge_decisions)

#: Message-hub key of the per-epoch ``softmax(alpha)`` history (saved in checkpoints):
#: ``{'epochs': [1, 2, ...], 'probabilities': [6 x 7 nested lists, one per epoch]}``.
ALPHA_HISTORY_KEY = 'sase/alpha_history'


def search_model(runner):
    """The search model (``SASESearch``) behind ``runner.model``, unwrapped."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model


def alpha_history(runner) -> Dict[str, list]:
    """The recorded history (empty lists before the first epoch)."""
    return runner.message_hub.get_info(ALPHA_HISTORY_KEY,
                                       dict(epochs=[], probabilities=[]))


@HOOKS.register_module()
class GenotypeLoggerHook(Hook):
    """After every train epoch: log ``softmax(alpha)`` per edge and the derived genotype,
    write the genotype (with each operation's weight as metadata ``_weights``) to
    ``<work_dir>/<filename>`` and its diagram (the block's DAG with
    each edge's operation and weight, undecided edges dashed; see
    :mod:`mmsase.visualization.genotype_diagram`) to ``<work_dir>/<diagram>``, both
    atomically, and append the probabilities to the message hub's ``sase/alpha_history``
    (checkpointed with the message hub, so the history survives ``--resume``;
    :class:`AlphaPlotHook` draws it). The log names the undecided edges, if any. The diagram
    is drawn for SASE's DAG only.

    Args:
        filename (str): name of the genotype file in the work dir.
        diagram (str, optional): name of the diagram PNG in the work dir; ``None`` draws none.
        margin (float): an edge whose two largest softmax weights differ by less is drawn
            as undecided.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW): the saved history is complete

    def __init__(self, filename: str = 'genotype.json',
                 diagram: Optional[str] = 'genotype.png',
                 margin: float = DEFAULT_MARGIN) -> None:
        self.filename = filename
        self.diagram = diagram
        self.margin = margin

    def undecided_note(self, architecture) -> str:
        """A log line naming the edges whose pick is within the margin ('' if none)."""
        undecided = [d for d in edge_decisions(architecture.probabilities().detach().cpu(),
                                               architecture.op_names, self.margin,
                                               architecture.space.excluded)
                     if not d.decided]
        if not undecided:
            return ''
        return (f'\nundecided (top two softmax weights within {self.margin:g}): ' + ', '.join(
            f'{d.edge} ({d.op} {d.weight:.4f} vs {d.runner_up} {d.runner_up_weight:.4f})'
            for d in undecided))

    def after_train_epoch(self, runner) -> None:
        model = search_model(runner)
        epoch = runner.epoch + 1  # the loop counts the finished epoch after this hook
        probabilities = model.architecture.probabilities().detach().cpu().tolist()
        genotype = model.derive()

        history = alpha_history(runner)
        runner.message_hub.update_info(
            ALPHA_HISTORY_KEY,
            dict(
                epochs=history['epochs'] + [epoch],
                probabilities=history['probabilities'] + [probabilities]))

        runner.logger.info(
            f'architecture after epoch {epoch} (softmax(alpha) per edge, * = derived):\n'
            + model.architecture.table() +
            f'\ngenotype: {genotype}' + self.undecided_note(model.architecture))
        if is_main_process():
            names = model.architecture.op_names
            weights = {edge: dict(zip(names[edge], row))
                       for edge, row in zip(names, probabilities)}
            model.architecture.space.save(
                genotype,
                osp.join(runner.work_dir, self.filename),
                metadata=dict(_epoch=epoch, _weights=weights))
            if self.diagram and can_draw(model.architecture):
                png = draw_architecture(model.architecture, self.margin,
                                        title=f'SASE genotype after epoch {epoch}')
                atomic_write(osp.join(runner.work_dir, self.diagram), png)
