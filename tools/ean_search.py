"""EAN's controller search: where to plug the shared attention modules of a trained supernet.

    python tools/ean_search.py CONFIG CHECKPOINT [--work-dir DIR] [--steps N] [--resume]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

    # the held-out split sharded over 8 GPUs (ImageNet's is 100k images per scored code)
    torchrun --nproc_per_node=8 tools/ean_search.py CONFIG CHECKPOINT --launcher pytorch
    # or: python -m torch.distributed.launch --nproc_per_node=8 tools/ean_search.py ...

CONFIG is the supernet's config (a backbone with ``attention_shared=True``) with a key

    ean_search = dict(
        # held-out images the supernet was not trained on (ImageNet: the first 100 training
        # images per class; CIFAR / digits: a seeded split of the training set)
        heldout_dataloader=dict(batch_size=256, num_workers=2, dataset=..., sampler=...),
        steps=300, codes_per_step=3,            # 1 + validate_size 2 codes per step
        temperature=5.0, controller_mlp=(20, 50),  # None: free logits
        lr=5e-2, optimizer='Adam', baseline_decay=0.95,
        reward_lambda=2.0, reward_offset=54.0,  # R = top-1 % + λ·unplugged fraction − offset
        rnd=True, replay=True, replay_start=10, replay_buffer=30,  # the authors' extras
        seed=0, plot_interval=10)

(every key but ``heldout_dataloader`` has the authors' value as its default). CHECKPOINT holds
the supernet's weights (tools/train.py with the random-code hook). The supernet is frozen in
eval mode; each distinct code is scored once. In the work dir (default
``work_dirs/<config name>_search``): ``search_state.pth`` (after every step; ``--resume``
continues from it exactly), ``best_code.json`` / ``most_likely_code.json`` (for
``--connection-code``), ``search_log.json``, ``search.log`` and ``plug_probabilities.png``.

Under a launcher (as tools/train.py: ``mmengine.dist.init_dist``, NCCL with every rank on the
GPU of its local rank; without CUDA, ``--launcher pytorch`` runs gloo ranks on the CPU) each rank
scores its shard of the held-out split and the counts are summed over the ranks, so every rank
sees the accuracy of the whole split and, seeded alike, takes the same controller steps
(mmsase/engine/ean_search.py). Only rank 0 prints and writes the work dir; every rank reads
``search_state.pth`` on ``--resume``, so the work dir must be one they share.
"""
import argparse
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.dist import get_world_size, init_dist, is_main_process
from mmengine.registry import MODELS, init_default_scope

import mmsase.engine  # noqa: F401  (checkpoint safety)
from mmsase.engine.ean_search import (SEARCH_DEFAULTS, EANSearchRun, build_heldout_dataloader,
                                      heldout_top1)
from mmsase.utils.checkpoint import CheckpointError, load_checkpoint_file
from mmsase.utils.launch import init_cpu_process_group, run_cli, set_local_rank_env


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the supernet config, with an ean_search dict')
    parser.add_argument('checkpoint', help='the trained supernet checkpoint')
    parser.add_argument('--work-dir', help='where the search writes (default: '
                        'work_dirs/<config name>_search)')
    parser.add_argument('--steps', type=int, help='controller steps (default: the config\'s '
                        f'ean_search.steps, else {SEARCH_DEFAULTS["steps"]})')
    parser.add_argument('--resume', action='store_true',
                        help='continue from search_state.pth in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. ean_search.seed=1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (several ranks share the scoring)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args()


def init_launcher(launcher: str) -> None:
    """Join the launcher's process group (nothing for 'none', or when already joined).

    With CUDA, mmengine's ``init_dist`` (NCCL) also sets each rank's device
    (``torch.cuda.set_device`` of the local rank), where :func:`build_supernet` puts the model;
    without, torchrun's ranks join a gloo group on the CPU (as tools/train.py's).
    """
    if launcher == 'none' or torch_dist.is_initialized():
        return
    if not init_cpu_process_group(launcher):
        init_dist(launcher)


def build_supernet(cfg: Config, checkpoint: str):
    """The config's model with the checkpoint's weights, frozen in eval mode."""
    model_cfg = cfg.model.copy()
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = cfg.data_preprocessor  # as mmengine's Runner
    model = MODELS.build(model_cfg)
    state = load_checkpoint_file(checkpoint, map_location='cpu')
    state_dict = state.get('state_dict', state) if isinstance(state, dict) else None
    if not isinstance(state_dict, dict):
        raise CheckpointError(f'{checkpoint} holds no state_dict')
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise CheckpointError(f'{checkpoint} does not fit the model of the config: '
                              f'{str(e).splitlines()[0]} {str(e).splitlines()[1:3]}') from e
    model.eval().requires_grad_(False)
    if torch.cuda.is_available():
        model.cuda()
    backbone = getattr(model, 'backbone', model)
    if not hasattr(backbone, 'set_connection_code'):
        raise ValueError(f'the backbone {type(backbone).__name__} takes no connection code: '
                         'build it with attention=dict(type=...) and attention_shared=True')
    return model, backbone


def main():
    """Run the search; return the :class:`EANSearchRun` (for the tests)."""
    args = parse_args()
    set_local_rank_env(args.local_rank)  # torch.distributed.launch passes --local-rank
    init_launcher(args.launcher)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    settings = dict(cfg.get('ean_search') or {})
    loader_cfg = settings.pop('heldout_dataloader', None)
    if loader_cfg is None:
        raise ValueError(f'{args.config} has no ean_search.heldout_dataloader: the search '
                         'scores codes on held-out training images (see tools/ean_search.py)')
    if args.steps is not None:
        settings['steps'] = args.steps
    work_dir = args.work_dir or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0] + '_search')
    writer = is_main_process()  # the other ranks hold the same search: rank 0 writes
    if writer:
        os.makedirs(work_dir, exist_ok=True)

    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model, backbone = build_supernet(cfg, args.checkpoint)
    loader = build_heldout_dataloader(loader_cfg, seed=settings.get('seed', 0))

    def accuracy(code):
        backbone.set_connection_code(code)
        return heldout_top1(model, loader)  # the same on every rank: summed over the shards

    log_file = open(osp.join(work_dir, 'search.log'), 'a') if writer else None

    def log(line):
        if log_file is None:
            return
        print(line, flush=True)
        log_file.write(line + '\n')
        log_file.flush()

    search = EANSearchRun(work_dir, accuracy, backbone.stage_blocks, settings, log=log)
    if args.resume:
        if search.resume():
            log(f'resumed from {osp.join(work_dir, "search_state.pth")} after '
                f'{search.search.num_steps} steps')
        else:
            log(f'--resume: no search_state.pth in {work_dir}, starting from scratch')
    ranks = get_world_size()
    shards = f' in {ranks} shards' if ranks > 1 else ''
    log(f'EAN search: {len(loader.dataset)} held-out images{shards}, stages of '
        f'{tuple(backbone.stage_blocks)} blocks, settings {search.settings}')
    best = search.run()
    if best is None:
        log('no step was run (--steps 0)')
    else:
        likely = search.code(search.search.controller.most_likely()).to_string('-')
        best_code = search.code(best['code']).to_string('-')
        log(f'best code (highest reward seen): {best_code} at step {best["step"]}, held-out '
            f'top-1 {best["accuracy"]:.2f}%, reward {best["reward"]:.3f} -> '
            f'{osp.join(work_dir, "best_code.json")}')
        log(f'most likely code now: {likely} -> '
            f'{osp.join(work_dir, "most_likely_code.json")}; '
            f'plot: {osp.join(work_dir, "plug_probabilities.png")}')
    if log_file is not None:
        log_file.close()
    return search


if __name__ == '__main__':
    run_cli(main)
