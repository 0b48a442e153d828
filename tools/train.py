"""Train an mmsase model (mmpretrain or mmdet configs alike) with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

CONFIG is a config file, or names one shipped with mmsase: a path that does not exist but
whose file name is a shipped config's (configs/faster_rcnn_r50_sase_1x_coco.py, the flat
layout from before the per-method folders, or the bare file name) loads that config, and
the tool prints the path it used. An existing path is always loaded as given.
"""
import argparse

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmsase.engine  # noqa: F401  (checkpoint safety, optimizer wrappers, loops, hooks)
from mmsase.utils.checkpoint import latest_checkpoint
from mmsase.utils.launch import add_common_arguments, prepare_config, run_cli


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument(
        'config', help='train config file path, or a shipped config\'s file name '
        '(configs/<name>.py or <name>.py find configs/<method>/<name>.py)')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision (fp16 AMP on GPU, bfloat16 autocast on CPU)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by the actual batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value) from the latest one '
        'in the work dir')
    add_common_arguments(parser, 'train_cfg.max_epochs=2 model.backbone.attention.genotype=g.json')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = prepare_config(args)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size '
                               'in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.load_from = latest_checkpoint(cfg.work_dir)
        cfg.resume = cfg.load_from is not None
        if not cfg.resume:
            print(f'--resume: no checkpoint in {cfg.work_dir}, starting from scratch')
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    run_cli(main)
