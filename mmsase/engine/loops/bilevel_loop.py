"""An epoch-based train loop that feeds both splits of a bi-level (DARTS) search."""
import logging
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, set_random_seed
from torch.utils.data import DataLoader

from mmsase.registry import LOOPS


@LOOPS.register_module()
class BilevelEpochBasedTrainLoop(EpochBasedTrainLoop):
    """Epoch-based training over the weight split, with a batch of the architecture split
    alongside every weight batch.

    Each iteration calls ``model.train_step({'weights': weight_batch, 'architecture':
    architecture_batch}, optim_wrapper)`` between the usual ``before_train_iter`` and
    ``after_train_iter`` hooks. An epoch is one pass over ``train_dataloader`` (the weight
    split); the architecture loader restarts whenever it runs out.

    Resuming is exact: at the start of every epoch the python, numpy and torch global RNGs
    are reseeded from ``(runner.seed, epoch)`` (random augmentation in the main process uses
    them, and mmengine does not save them in checkpoints), and both samplers get
    ``set_epoch(epoch)``. A search resumed after epoch ``k`` therefore sees the same data and
    augmentation as an uninterrupted one, provided ``randomness=dict(seed=...)`` is fixed and
    data workers are not persistent.

    Config::

        train_dataloader = dict(batch_size=64, dataset=dict(type='mmsase.HalfSplit', part=0,
                                                            dataset=cifar10_train), ...)
        train_cfg = dict(type='mmsase.BilevelEpochBasedTrainLoop', max_epochs=50,
                         val_interval=1,
                         arch_dataloader=dict(batch_size=64, dataset=dict(
                             type='mmsase.HalfSplit', part=1, dataset=cifar10_train), ...))

    Args:
        runner: the runner.
        dataloader: the weight split's loader (``train_dataloader``), built or a config.
        arch_dataloader: the architecture split's loader, built or a config.
        max_epochs, val_begin, val_interval, dynamic_intervals: as for
            ``EpochBasedTrainLoop``.
        reseed_every_epoch: reseed the global RNGs at each epoch start (needed for exact
            resumption; switch off only to reproduce runs made without it).
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 arch_dataloader: Union[DataLoader, Dict],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None,
                 reseed_every_epoch: bool = True) -> None:
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        if isinstance(arch_dataloader, dict):
            arch_dataloader = runner.build_dataloader(
                arch_dataloader,
                seed=runner.seed,
                diff_rank_seed=_randomness(runner).get('diff_rank_seed', False))
        self.arch_dataloader = arch_dataloader
        self.reseed_every_epoch = reseed_every_epoch
        if _randomness(runner).get('seed') is None:
            # the samplers are built (seeded) before a resume restores the run's seed
            print_log('randomness.seed is not set: a search resumed with --resume will not '
                      'see the data in the order an uninterrupted one does. Set '
                      'randomness=dict(seed=...) for exact resumption.', logger='current',
                      level=logging.WARNING)

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        if self.reseed_every_epoch:
            self._reseed_global_rngs()
        _set_sampler_epoch(self.arch_dataloader, self._epoch)
        arch_batches = _cycle(self.arch_dataloader)
        for idx, weights_batch in enumerate(self.dataloader):
            data_batch = dict(
                weights=weights_batch, architecture=next(arch_batches))
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _reseed_global_rngs(self) -> None:
        # SeedSequence mixes (seed, epoch) so that nearby pairs give unrelated streams.
        epoch_seed = int(
            np.random.SeedSequence([self.runner.seed,
                                    self._epoch]).generate_state(1)[0])
        set_random_seed(
            epoch_seed,
            diff_rank_seed=_randomness(self.runner).get('diff_rank_seed', False))


def _randomness(runner) -> Dict[str, Any]:
    """The runner's ``randomness`` config. mmengine has no public accessor for it; its own
    ``BaseLoop`` reads this attribute to build the train loader the same way."""
    return getattr(runner, '_randomness_cfg', None) or {}


def _set_sampler_epoch(dataloader: DataLoader, epoch: int) -> None:
    """What mmengine's ``DistSamplerSeedHook`` does for the train loader."""
    sampler = getattr(dataloader, 'sampler', None)
    if not hasattr(sampler, 'set_epoch'):
        sampler = getattr(getattr(dataloader, 'batch_sampler', None),
                          'sampler', None)
    if hasattr(sampler, 'set_epoch'):
        sampler.set_epoch(epoch)


def _cycle(dataloader: DataLoader) -> Iterator[Any]:
    """The loader's batches, restarting it whenever it is exhausted."""
    while True:
        empty = True
        for batch in dataloader:
            empty = False
            yield batch
        if empty:
            raise ValueError('the architecture dataloader yields no batch')
