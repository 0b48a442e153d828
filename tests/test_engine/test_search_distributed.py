"""Two gloo processes searching on different data must keep identical alpha and weights."""
import faulthandler
import os
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _tools import free_port

WORLD_SIZE, STEPS = 2, 3


def flat_state(model) -> torch.Tensor:
    tensors = [model.architecture.alpha] + list(model.classifier.parameters()) + list(
        model.classifier.buffers())
    return torch.cat([t.detach().double().flatten() for t in tensors])


def gather(tensor: torch.Tensor) -> list:
    gathered = [torch.empty_like(tensor) for _ in range(WORLD_SIZE)]
    dist.all_gather(gathered, tensor)
    return gathered


def search_worker(rank: int, port: int, result_path: str, options: dict) -> None:
    faulthandler.enable()  # a native abort still prints where each thread was
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=WORLD_SIZE)
    # gloo's set-up and tear-down are not synchronising: a rank that tears down while its
    # peer is still connecting or sending can abort it. Barriers bracket the work.
    dist.barrier()
    torch.set_num_threads(1)
    try:
        from _search_toys import build_search_optim_wrapper, tiny_search_cfg, toy_batch
        from mmsase.engine.model_wrappers import SearchDataParallel
        from mmengine.logging import MessageHub
        from mmsase.registry import MODELS
        torch.manual_seed(rank)  # different initial states: the wrapper must broadcast
        model = MODELS.build(dict(tiny_search_cfg(unroll=True), **options))
        hub = MessageHub.get_current_instance()
        initial = gather(flat_state(model))
        wrapped = SearchDataParallel(model)
        optim_wrapper = build_search_optim_wrapper(wrapped)
        losses = []
        for step in range(STEPS):
            hub.update_info('epoch', step)  # the countermeasures' schedules follow it
            hub.update_info('max_epochs', STEPS)
            hub.update_info('iter', step)
            first = 8 * (WORLD_SIZE * step + rank)  # each rank sees its own samples
            data = dict(weights=toy_batch(range(first, first + 4)),
                        architecture=toy_batch(range(first + 4, first + 8)))
            losses.append(wrapped.train_step(data, optim_wrapper)['loss_weights'])
        final = gather(flat_state(model))
        all_losses = gather(torch.stack(losses).double())
        if rank == 0:
            torch.save(dict(initial=initial, final=final, losses=all_losses), result_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn_search(result_path: str, options: dict, attempts: int = 2) -> None:
    """Run the two ranks; a rank killed by a signal is retried once, on a fresh port.

    Seen once in CI: a rank aborted natively ("terminate called without an active
    exception") before its first collective; 40 local runs, some under CPU load, did not
    repeat it. A Python exception or a failed check in a rank is never retried."""
    for attempt in range(1, attempts + 1):
        try:
            mp.spawn(search_worker, args=(free_port(), result_path, options),
                     nprocs=WORLD_SIZE)
            return
        except mp.ProcessExitedException as err:
            if err.signal_name is None or attempt == attempts:
                raise
            warnings.warn(f'rank {err.error_index} died of {err.signal_name}; retrying once')


@pytest.mark.slow
@pytest.mark.parametrize('options', [
    {},
    # the recommended countermeasures: the smoothing noise must be the same on every rank
    dict(warmup_epochs=1, beta_decay=dict(max_weight=25.0, centred=True),
         random_smoothing=dict(max_epsilon=0.3)),
], ids=['plain', 'countermeasures'])
def test_ranks_stay_identical(tmp_path, options):
    result_path = str(tmp_path / 'result.pt')
    spawn_search(result_path, options)
    result = torch.load(result_path)
    assert not torch.equal(result['initial'][0], result['initial'][1])
    assert not torch.equal(result['losses'][0], result['losses'][1])  # different data
    assert torch.equal(result['final'][0], result['final'][1])
    assert not torch.equal(result['final'][0], result['initial'][0])
