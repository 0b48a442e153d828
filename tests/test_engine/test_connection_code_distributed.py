"""EAN's supernet codes on 2 gloo ranks: RandomConnectionCodeHook draws the same code on every
rank without communicating (the run's seed, shared by mmengine, and the iteration number)."""
import faulthandler
import os
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _tools import free_port

from test_connection_code_hook import FakeRunner, SupernetToy

WORLD_SIZE = 2


def code_worker(rank: int, port: int, result_path: str) -> None:
    faulthandler.enable()
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=WORLD_SIZE)
    dist.barrier()
    torch.set_num_threads(1)
    try:
        from mmengine.model import MMDistributedDataParallel
        from mmengine.runner.utils import set_random_seed

        from mmsase.engine.hooks import RandomConnectionCodeHook
        torch.manual_seed(rank)
        model = MMDistributedDataParallel(SupernetToy(), find_unused_parameters=True)
        rows = []
        for diff_rank_seed in (False, True):
            # as mmengine's Runner: no seed in the config, one drawn on rank 0 and broadcast
            seed = set_random_seed(None, diff_rank_seed=diff_rank_seed)
            runner = FakeRunner(model, seed, diff_rank_seed)
            hook = RandomConnectionCodeHook()
            hook.before_run(runner)
            for iteration in range(6):
                runner.iter = iteration
                hook.before_train_iter(runner, iteration)
                rows.append(model.module.backbone.connection_code.flat)
        codes = torch.tensor(rows)
        gathered = [torch.empty_like(codes) for _ in range(WORLD_SIZE)]
        dist.all_gather(gathered, codes)
        if rank == 0:
            torch.save(gathered, result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_draw_identical_codes(tmp_path):
    result_path = str(tmp_path / 'codes.pt')
    for attempt in range(2):  # a rank killed by a signal is retried once (see the search test)
        try:
            # fork: the ranks inherit the imports (spawning re-imports mmsase, ~10 s a rank)
            mp.start_processes(code_worker, args=(free_port(), result_path),
                               nprocs=WORLD_SIZE, start_method='fork')
            break
        except mp.ProcessExitedException as err:
            if err.signal_name is None or attempt == 1:
                raise
            warnings.warn(f'rank {err.error_index} died of {err.signal_name}; retrying once')
    rank0, rank1 = torch.load(result_path)
    assert torch.equal(rank0, rank1)
    assert len({tuple(row) for row in rank0.tolist()}) > 6  # the codes change every iteration
