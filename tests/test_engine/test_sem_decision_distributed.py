"""SEMDecisionHook on 2 gloo ranks counts every image of the validation set once.

mmengine's DefaultSampler pads a data set whose size does not divide by the number of ranks:
the last indices wrap around to the start, so with 7 images and 2 ranks image 0 (or the first
of the shuffled order) is seen by both ranks. The hook must drop that repeat, as mmengine's
evaluator does, so that its numbers equal those of one process on the same data and those
computed here from the network's weights.
"""
import faulthandler
import json
import os
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from _tools import free_port
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel

from mmsase.models.plugins import SEM

WORLD_SIZE, NUM_IMAGES = 2, 7
# (name, DefaultSampler options): padded in data-set order, padded in a shuffled order, and
# not padded (the ranks then see 4 and 3 images)
SAMPLERS = (('ordered', dict(shuffle=False)),
            ('shuffled', dict(shuffle=True, seed=3)),
            ('no-round-up', dict(shuffle=False, round_up=False)))


class ToyImages(torch.utils.data.Dataset):
    """NUM_IMAGES random 3×8×8 images; a sample is its image and its index."""

    def __init__(self):
        self.images = torch.randn(NUM_IMAGES, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return NUM_IMAGES

    def __getitem__(self, index):
        return dict(inputs=self.images[index], data_samples=index)


class ToySEMNet(BaseModel):
    """conv 3→16, then two SEM blocks; predicts the indices of its samples."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.sem1 = SEM(16)
        self.sem2 = SEM(16)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = self.sem2(self.sem1(self.stem(torch.stack(list(inputs)))))
        if mode == 'loss':
            return dict(loss=x.mean())
        return list(data_samples) if mode == 'predict' else x


class SeenImages(BaseMetric):
    """How many images mmengine's evaluator keeps, and how many distinct ones."""
    default_prefix = 'seen'

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return dict(count=len(results), distinct=len(set(results)))


def build_net() -> ToySEMNet:
    torch.manual_seed(0)  # the same weights in every process (DDP broadcasts rank 0's anyway)
    return ToySEMNet()


def validate(work_dir: str, sampler: dict, distributed: bool) -> dict:
    """``Runner.val()`` of ToySEMNet on ToyImages (batch 2) with SEMDecisionHook: the hook's
    JSON (on rank 0) and the evaluator's metrics."""
    from mmengine.runner import Runner

    from mmsase.engine.hooks import SEMDecisionHook
    # CPU DDP: no device ids (mmengine's default gives DDP [LOCAL_RANK], which needs a GPU)
    extra = dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='gloo')),
                 cfg=dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                                 device_ids=None))
                 ) if distributed else dict(launcher='none')
    runner = Runner(
        model=build_net(), work_dir=work_dir,
        val_dataloader=dict(dataset=ToyImages(), batch_size=2, num_workers=0,
                            sampler=dict(type='DefaultSampler', **sampler)),
        val_cfg=dict(), val_evaluator=[SeenImages()], custom_hooks=[SEMDecisionHook()],
        default_hooks=dict(checkpoint=None), log_level='WARNING',
        experiment_name=f'sem_decision_{osp.basename(work_dir)}_{int(distributed)}', **extra)
    metrics = runner.val()
    record = None
    if not distributed or dist.get_rank() == 0:
        with open(osp.join(work_dir, 'sem_decisions.json')) as f:
            record = json.load(f)
    return dict(record=record, metrics=metrics)


def val_worker(rank: int, port: int, root: str) -> None:
    faulthandler.enable()
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE))
    dist.init_process_group('gloo', rank=rank, world_size=WORLD_SIZE)
    dist.barrier()  # gloo's set-up and tear-down do not synchronise: barriers bracket the work
    torch.set_num_threads(1)
    try:
        results = {name: validate(osp.join(root, name), sampler, distributed=True)
                   for name, sampler in SAMPLERS}
        if rank == 0:
            with open(osp.join(root, 'result.json'), 'w') as f:
                json.dump(results, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_two_ranks(root: str) -> dict:
    for attempt in range(2):  # a rank killed by a signal is retried once (see the search test)
        try:
            # fork: the ranks inherit the imports (spawning re-imports mmsase, ~10 s a rank)
            mp.start_processes(val_worker, args=(free_port(), root), nprocs=WORLD_SIZE,
                               start_method='fork')
            break
        except mp.ProcessExitedException as err:
            if err.signal_name is None or attempt == 1:
                raise
            warnings.warn(f'rank {err.error_index} died of {err.signal_name}; retrying once')
    with open(osp.join(root, 'result.json')) as f:
        return json.load(f)


def expected_decisions(indices) -> dict:
    """Mean of w = σ(Linear(GAP(x))) over the images ``indices`` for both blocks, from the
    blocks' inputs and switch weights in float64, without the hook."""
    net, images = build_net().double().eval(), ToyImages().images.double()[list(indices)]
    with torch.no_grad():
        x1 = net.stem(images)
        x2 = net.sem1(x1)
    return {name: torch.sigmoid(block.switch_fc(x.mean((2, 3)))).mean(0).tolist()
            for name, block, x in (('sem1', net.sem1, x1), ('sem2', net.sem2, x2))}


@pytest.mark.slow
def test_two_ranks_count_every_image_once(tmp_path):
    threads = torch.get_num_threads()
    two_ranks = run_two_ranks(str(tmp_path / 'two'))
    torch.set_num_threads(1)
    try:
        one = {name: validate(str(tmp_path / 'one' / name), sampler, distributed=False)
               for name, sampler in SAMPLERS}
    finally:
        torch.set_num_threads(threads)
    expected = expected_decisions(range(NUM_IMAGES))
    # image 0 counted twice, as before the fix: far enough off for the tolerance below
    doubled = expected_decisions([*range(NUM_IMAGES), 0])
    assert not np.allclose(doubled['sem1'], expected['sem1'], rtol=1e-4, atol=0)
    for name, _ in SAMPLERS:
        # mmengine's evaluator drops the padding too
        assert two_ranks[name]['metrics'] == one[name]['metrics'] == {
            'seen/count': NUM_IMAGES, 'seen/distinct': NUM_IMAGES}, name
        record, single = two_ranks[name]['record'], one[name]['record']
        assert record['num_images'] == single['num_images'] == NUM_IMAGES, name
        assert list(record['layers']) == list(single['layers']) == ['sem1', 'sem2']
        for block in ('sem1', 'sem2'):
            np.testing.assert_allclose(record['layers'][block], single['layers'][block],
                                       rtol=1e-6, err_msg=f'{name} {block}')
            np.testing.assert_allclose(record['layers'][block], expected[block], rtol=1e-5,
                                       atol=1e-7, err_msg=f'{name} {block}')
