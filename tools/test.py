"""Evaluate a checkpoint (COCO mAP for detectors, accuracy for classifiers).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]
        [--out results.pkl] [--cfg-options k=v ...] [--launcher ...]

CONFIG is a config file, or names one shipped with mmsase: a path that does not exist but
whose file name is a shipped config's (configs/faster_rcnn_r50_sase_1x_coco.py, the flat
layout from before the per-method folders, or the bare file name) loads that config, and
the tool prints the path it used. An existing path is always loaded as given.
"""
import argparse
import os.path as osp

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmsase.engine  # noqa: F401  (checkpoint safety)
from mmsase.utils.launch import add_common_arguments, prepare_config, run_cli


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument(
        'config', help='test config file path, or a shipped config\'s file name '
        '(configs/<name>.py or <name>.py find configs/<method>/<name>.py)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to this pickle file')
    parser.add_argument(
        '--show-dir',
        help='draw predictions and save the images into this directory '
        '(relative paths are inside the work dir / timestamp dir)')
    parser.add_argument('--show', action='store_true', help='show predictions')
    parser.add_argument('--wait-time', type=float, default=2, help='show interval (s)')
    parser.add_argument('--amp', action='store_true', help='mixed precision inference')
    add_common_arguments(parser, 'test_dataloader.batch_size=1')
    return parser.parse_args()


def enable_visualization(cfg: Config, show_dir, show: bool, wait_time: float) -> None:
    """Turn on the visualization hook of an mmdet (``draw``) or mmpretrain (``enable``) config."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ValueError('--show/--show-dir need a "visualization" entry in '
                         'default_hooks (mmdet and mmpretrain bases have one)')
    if 'draw' in hook or 'Det' in str(hook.get('type', '')):
        hook['draw'] = True
        if show_dir:
            hook['test_out_dir'] = show_dir
    else:
        hook['enable'] = True
        if show_dir:
            hook['out_dir'] = show_dir
    hook['show'] = show
    hook['wait_time'] = wait_time


def main():
    args = parse_args()
    cfg = prepare_config(args)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'error: checkpoint {args.checkpoint!r} does not exist')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show_dir, args.show, args.wait_time)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'error: --out must be a .pkl file, got {args.out!r}')
        cfg.test_evaluator = list(cfg.test_evaluator) if isinstance(
            cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    metrics = runner.test()
    if is_main_process():
        print('\n'.join(f'{k}: {v}' for k, v in metrics.items()))


if __name__ == '__main__':
    run_cli(main)
