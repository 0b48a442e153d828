"""EAN's supernet training: a uniformly random connection code every training iteration.

EAN (gbup-group/EAN-efficient-attention-network, ``train_imagenet_ensemble_subset.py``) trains
the network with shared attention modules while sampling 16 i.i.d. Bernoulli(0.5) bits per
iteration (every block plugged with probability 1/2), and validates the supernet with the code
(0, 0, 0, 0) (no block plugged).

:class:`RandomConnectionCodeHook` draws iteration ``i``'s code from a generator seeded by
``(seed, i)`` (``seed``: the run's, mmengine's ``randomness.seed``, which a resumed run reads back
from its checkpoint, and which every rank shares): all ranks draw the same code without
communicating, and a resumed run draws the codes the uninterrupted run would have.
"""
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmsase.models.ean.code import ConnectionCode
from mmsase.registry import HOOKS

#: Message-hub key of the code in use (a bit string, leftmost = first block).
CODE_KEY = 'ean/connection_code'


def code_backbone(model: nn.Module) -> nn.Module:
    """The backbone of ``model`` (DDP unwrapped) that takes connection codes."""
    if is_model_wrapper(model):
        model = model.module
    backbone = getattr(model, 'backbone', None)
    if backbone is None or not hasattr(backbone, 'set_connection_code'):
        raise ValueError(f'{type(model).__name__} has no backbone that takes EAN connection '
                         f'codes (mmsase.AttentionResNet or mmsase.CifarResNet)')
    return backbone


def iteration_generator(seed: int, iteration: int) -> torch.Generator:
    """A generator for iteration ``iteration`` of a run seeded ``seed``: both numbers are mixed
    by numpy's ``SeedSequence``, so neighbouring seeds and iterations give unrelated streams."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(iteration)]).generate_state(
        2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


@HOOKS.register_module()
class RandomConnectionCodeHook(Hook):
    """Before every training iteration, set a uniformly random connection code on the model's
    backbone; before every validation (and test) epoch, the fixed ``val_code``.

    Args:
        val_code: the code the supernet is validated with, any form of
            :meth:`ConnectionCode.parse`, or ``'none'`` (the authors' all-zero code, the
            default) or ``'all'`` (every block plugged).
        p (float): the probability that a block is plugged (1/2: a uniform code).
        seed (int, optional): the codes' seed; None = the run's (``runner.seed``, less the
            rank under ``randomness.diff_rank_seed``).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, val_code='none', p: float = 0.5, seed: Optional[int] = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f'p must be a probability, got {p!r}')
        self.val_code = val_code
        self.p = p
        self.seed = seed

    def before_run(self, runner) -> None:
        self.fixed_code(code_backbone(runner.model).stage_blocks)  # a bad code fails first

    def fixed_code(self, stage_blocks) -> ConnectionCode:
        if self.val_code == 'none':
            return ConnectionCode.none_plugged(stage_blocks)
        if self.val_code == 'all':
            return ConnectionCode.all_plugged(stage_blocks)
        return ConnectionCode.parse(self.val_code, stage_blocks)

    def run_seed(self, runner) -> int:
        if self.seed is not None:
            return self.seed
        randomness = getattr(runner, '_randomness_cfg', None) or {}
        # diff_rank_seed adds the rank to runner.seed; every rank must draw the same code
        return runner.seed - (get_rank() if randomness.get('diff_rank_seed') else 0)

    def code_for(self, runner, iteration: int) -> ConnectionCode:
        """The code of training iteration ``iteration`` (0-based) of this run."""
        generator = iteration_generator(self.run_seed(runner), iteration)
        return ConnectionCode.random(code_backbone(runner.model).stage_blocks, generator, self.p)

    def _set(self, runner, code: ConnectionCode) -> None:
        code_backbone(runner.model).set_connection_code(code)
        runner.message_hub.update_info(CODE_KEY, code.to_string())

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._set(runner, self.code_for(runner, runner.iter))

    def before_val_epoch(self, runner) -> None:
        self._set(runner, self.fixed_code(code_backbone(runner.model).stage_blocks))

    def before_test_epoch(self, runner) -> None:
        self._set(runner, self.fixed_code(code_backbone(runner.model).stage_blocks))
