"""Logging the architecture of a SASE search after every epoch."""
import os.path as osp
from typing import Dict

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmsase.models.sase.genotype import save_genotype
from mmsase.registry import HOOKS

#: Message-hub key of the per-epoch ``softmax(alpha)`` history (saved in checkpoints):
#: ``{'epochs': [1, 2, ...], 'probabilities': [6 x 7 nested lists, one per epoch]}``.
ALPHA_HISTORY_KEY = 'sase/alpha_history'


def search_model(runner):
    """The ``SASESearch`` model behind ``runner.model``, unwrapped."""
    model = runner.model
    return model.module if is_model_wrapper(model) else model


def alpha_history(runner) -> Dict[str, list]:
    """The recorded history (empty lists before the first epoch)."""
    return runner.message_hub.get_info(ALPHA_HISTORY_KEY,
                                       dict(epochs=[], probabilities=[]))


@HOOKS.register_module()
class GenotypeLoggerHook(Hook):
    """After every train epoch: log ``softmax(alpha)`` per edge and the derived genotype,
    write the genotype to ``<work_dir>/<filename>`` (atomically), and append the
    probabilities to the message hub's ``sase/alpha_history`` (checkpointed with the message
    hub, so the history survives ``--resume``; :class:`AlphaPlotHook` draws it).

    Args:
        filename (str): name of the genotype file in the work dir.
    """

    priority = 'NORMAL'  # before CheckpointHook (VERY_LOW): the saved history is complete

    def __init__(self, filename: str = 'genotype.json') -> None:
        self.filename = filename

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
            f'\ngenotype: {genotype}')
        if is_main_process():
            save_genotype(
                genotype,
                osp.join(runner.work_dir, self.filename),
                metadata=dict(_epoch=epoch))
