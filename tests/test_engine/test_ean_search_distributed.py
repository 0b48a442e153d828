"""EAN's controller search on 2 gloo ranks (tools/ean_search.py --launcher pytorch, as torchrun
runs it): the held-out top-1 summed over the shards is one process's on the whole split (an odd
number of images: uneven shards, none counted twice), both ranks run the search of one process
(codes, rewards, controller), a resumption included, and only rank 0 writes the work dir."""
import faulthandler
import os
import os.path as osp
import shutil
import sys
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _tools import free_port, load_tool

from test_ean_search import all_codes, save_supernet, supernet_config

WORLD_SIZE, STEPS = 2, 4
HELDOUT_PARTS = 32  # part 0 of the 1437 training digits: 45 images, shards of 23 and 22
OPTIONS = ['--cfg-options', 'ean_search.heldout_dataloader.batch_size=8',
           'ean_search.plot_interval=100']


def write_recorder(root: str, writes: list):
    """An audit hook (``sys.addaudithook``) appending ``(event, path)`` for every file or folder
    this process creates, opens for writing, renames, or changes under ``root``."""
    root = osp.abspath(root)
    create = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def hook(event, args):
        if event == 'open':
            path, mode, flags = args
            if mode is not None:
                writing = any(c in mode for c in 'wax+')
            else:  # os.open
                writing = bool(flags & create)
        elif event in ('os.rename', 'os.mkdir', 'os.remove', 'os.chmod', 'shutil.rmtree'):
            path, writing = args[1] if event == 'os.rename' else args[0], True
        else:
            return
        if writing and isinstance(path, (str, bytes, os.PathLike)):
            path = osp.abspath(os.fsdecode(path))
            if path == root or path.startswith(root + os.sep):
                writes.append((event, path))

    return hook


TOOL = None  # loaded in the test, before the fork: the ranks inherit it and its imports


def search_worker(rank: int, port: int, tmp: str) -> None:
    faulthandler.enable(sys.__stderr__)  # a native abort still prints where each thread was
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    work_dir = osp.join(tmp, 'ranks')
    writes = []
    sys.addaudithook(write_recorder(work_dir, writes))  # gone with the process
    config, checkpoint = osp.join(tmp, 'supernet.py'), osp.join(tmp, 'supernet.pth')
    argv = ['ean_search.py', config, checkpoint, '--work-dir', work_dir, '--launcher',
            'pytorch', *OPTIONS]
    try:
        # the tool joins the gloo group; 2 steps, then a resumption to STEPS in this process:
        # rank 1 must read search_state.pth only once rank 0 has written step 2 into it
        sys.argv = argv + ['--steps', '2', '--local-rank', str(rank)]
        TOOL.main()
        dist.barrier()  # gloo's set-up is not synchronising (see test_search_distributed.py)
        sys.argv = argv + ['--steps', str(STEPS), '--resume']
        search = TOOL.main()

        from mmengine.config import Config
        from mmengine.runner import Runner

        from mmsase.engine.ean_search import build_heldout_dataloader, heldout_top1
        cfg = Config.fromfile(config)
        loader_cfg = dict(cfg.ean_search.heldout_dataloader, batch_size=8)
        model, backbone = TOOL.build_supernet(cfg, checkpoint)
        loader = build_heldout_dataloader(loader_cfg, seed=0)
        accuracies = {}
        for code in all_codes(backbone.stage_blocks):
            backbone.set_connection_code(code)
            accuracies[code.to_string()] = heldout_top1(model, loader)
        # mmengine's default sampler pads the shards to 23 + 23: one image twice
        padded = Runner.build_dataloader(
            dict(loader_cfg, sampler=dict(type='DefaultSampler', shuffle=False)), seed=0)
        try:
            heldout_top1(model, padded)
            padded_error = None
        except ValueError as e:
            padded_error = str(e)
        torch.save(dict(
            shard=list(loader.sampler), accuracies=accuracies, padded_error=padded_error,
            controller=[p.detach().clone() for p in search.search.controller.parameters()],
            history=search.history, best=search.best, writes=writes),
            osp.join(tmp, f'rank{rank}.pt'))
        dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn_search(tmp: str, attempts: int = 2) -> None:
    """Fork the ranks (they inherit the imports); a rank killed by a signal is retried once,
    on a fresh port and an empty work dir (see test_search_distributed.py)."""
    for attempt in range(1, attempts + 1):
        try:
            mp.start_processes(search_worker, args=(free_port(), tmp), nprocs=WORLD_SIZE,
                               start_method='fork')
            return
        except mp.ProcessExitedException as err:
            if err.signal_name is None or attempt == attempts:
                raise
            warnings.warn(f'rank {err.error_index} died of {err.signal_name}; retrying once')
            shutil.rmtree(osp.join(tmp, 'ranks'), ignore_errors=True)


@pytest.mark.slow
def test_two_ranks_search_as_one_process(tmp_path, monkeypatch, capsys):
    from mmengine.config import Config

    from mmsase.engine.ean_search import build_heldout_dataloader, heldout_top1
    global TOOL
    TOOL = load_tool('tools/ean_search.py')
    config = supernet_config(tmp_path / 'supernet.py', heldout_parts=HELDOUT_PARTS)
    cfg = Config.fromfile(config)
    checkpoint = str(tmp_path / 'supernet.pth')
    save_supernet(cfg, checkpoint)

    spawn_search(str(tmp_path))  # before this process computes anything with threads
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=False) for r in range(2)]

    # one process, uninterrupted, on the whole split
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(sys, 'argv', [
            'ean_search.py', config, checkpoint, '--work-dir', str(tmp_path / 'single'),
            '--steps', str(STEPS), *OPTIONS])
        single = TOOL.main()
        model, backbone = TOOL.build_supernet(cfg, checkpoint)
        loader = build_heldout_dataloader(
            dict(cfg.ean_search.heldout_dataloader, batch_size=8), seed=0)
        expected = {}
        for code in all_codes(backbone.stage_blocks):
            backbone.set_connection_code(code)
            expected[code.to_string()] = heldout_top1(model, loader)
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()

    # (a) the shards split the 45 images, and the summed top-1 is one process's
    assert list(loader.sampler) == list(range(45)) and len(loader.dataset) == 45
    shards = [rank['shard'] for rank in ranks]
    assert [len(s) for s in shards] == [23, 22]
    assert sorted(shards[0] + shards[1]) == list(range(45))
    assert len(set(expected.values())) > 2  # the code changes the supernet's accuracy
    for rank in ranks:
        assert rank['accuracies'] == expected  # exactly: the same counts, one division
        assert 'scored 46 held-out images' in rank['padded_error']

    # (b) the same codes, rewards and controller on both ranks as in the one process
    for rank in ranks:
        assert [e['step'] for e in rank['history']] == list(range(1, STEPS + 1))
        assert rank['history'] == single.history
        assert rank['best'] == single.best
        for a, b in zip(rank['controller'], single.search.controller.parameters()):
            assert torch.equal(a, b)
    assert len({c for e in single.history for c in e['codes']}) > 3
    for name in ('search_log.json', 'best_code.json', 'most_likely_code.json'):
        assert (tmp_path / 'ranks' / name).read_text() == \
            (tmp_path / 'single' / name).read_text(), name

    # (c) only rank 0 wrote the work dir
    assert ranks[1]['writes'] == []
    written = {osp.basename(path) for _, path in ranks[0]['writes']}
    assert {'ranks', 'search.log', 'search_state.pth', 'best_code.json', 'most_likely_code.json',
            'search_log.json', 'plug_probabilities.png'} <= written
    log = (tmp_path / 'ranks' / 'search.log').read_text()
    assert 'in 2 shards' in log and 'resumed from' in log and f'step {STEPS}/{STEPS}' in log
