"""Two gloo processes searching on different data must keep identical alpha and weights."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD_SIZE, STEPS = 2, 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def flat_state(model) -> torch.Tensor:
    tensors = [model.architecture.alpha] + list(model.classifier.parameters()) + list(
        model.classifier.buffers())
    return torch.cat([t.detach().double().flatten() for t in tensors])


def gather(tensor: torch.Tensor) -> list:
    gathered = [torch.empty_like(tensor) for _ in range(WORLD_SIZE)]
    dist.all_gather(gathered, tensor)
    return gathered


def search_worker(rank: int, port: int, result_path: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    try:
        from _search_toys import build_search_model, build_search_optim_wrapper, toy_batch
        from mmsase.engine.model_wrappers import SearchDataParallel
        torch.manual_seed(rank)  # different initial states: the wrapper must broadcast
        model = build_search_model(unroll=True)
        initial = gather(flat_state(model))
        wrapped = SearchDataParallel(model)
        optim_wrapper = build_search_optim_wrapper(wrapped)
        losses = []
        for step in range(STEPS):
            first = 8 * (WORLD_SIZE * step + rank)  # each rank sees its own samples
            data = dict(weights=toy_batch(range(first, first + 4)),
                        architecture=toy_batch(range(first + 4, first + 8)))
            losses.append(wrapped.train_step(data, optim_wrapper)['loss_weights'])
        final = gather(flat_state(model))
        all_losses = gather(torch.stack(losses).double())
        if rank == 0:
            torch.save(dict(initial=initial, final=final, losses=all_losses), result_path)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ranks_stay_identical(tmp_path):
    result_path = str(tmp_path / 'result.pt')
    mp.spawn(search_worker, args=(free_port(), result_path), nprocs=WORLD_SIZE)
    result = torch.load(result_path)
    assert not torch.equal(result['initial'][0], result['initial'][1])
    assert not torch.equal(result['losses'][0], result['losses'][1])  # different data
    assert torch.equal(result['final'][0], result['final'][1])
    assert not torch.equal(result['final'][0], result['initial'][0])
