"""Which excitation operator each SEM block of a trained model uses: the mean decision vector
``w`` (FC, ECA, IE) of every SEM block over a data set, as JSON and as a heat map.

    python tools/analysis/sem_decisions.py CONFIG CHECKPOINT [--out-dir DIR] [--split val|test]
        [--cfg-options k=v ...]

Runs the config's validation (``--split val``, the default) or test loop on the checkpoint with
:class:`mmsase.engine.hooks.SEMDecisionHook`, which writes ``sem_decisions.json`` and
``sem_decisions.png`` into ``--out-dir`` (default: ``sem_decisions_<split>/`` next to the
checkpoint); the loop's metrics are printed too.
"""
import argparse
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmsase.engine  # noqa: F401  (checkpoint safety, the hook)
from mmsase.engine.hooks.sem_decision_hook import sem_blocks
from mmsase.utils.launch import add_common_arguments, prepare_config, run_cli

HOOK = 'SEMDecisionHook'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of a model with SEM blocks')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', help='where the JSON and the PNG go (default: '
                        'sem_decisions_<split>/ next to the checkpoint)')
    parser.add_argument('--split', choices=('val', 'test'), default='val',
                        help="the config's val_dataloader or test_dataloader")
    add_common_arguments(parser, 'val_dataloader.batch_size=50')
    args = parser.parse_args(argv)
    if args.out_dir is None:
        args.out_dir = osp.join(osp.dirname(osp.abspath(args.checkpoint)),
                                f'sem_decisions_{args.split}')
    args.work_dir, args.amp = args.out_dir, False
    return args


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg = prepare_config(args)
    cfg.load_from = args.checkpoint
    hooks = [h for h in cfg.get('custom_hooks', None) or []
             if str(h.get('type', '')).split('.')[-1] != HOOK]
    cfg.custom_hooks = hooks + [
        dict(type=f'mmsase.{HOOK}', metadata=dict(checkpoint=osp.abspath(args.checkpoint)))]

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if not sem_blocks(runner.model):  # before the data set is read
        raise ValueError(f'{args.config} builds no SEM block (mmsase.SEM): nothing to record')
    metrics = runner.val() if args.split == 'val' else runner.test()
    if is_main_process():
        print('\n'.join(f'{k}: {v}' for k, v in metrics.items()))
        for name in ('sem_decisions.json', 'sem_decisions.png'):
            print(f'wrote {osp.join(cfg.work_dir, name)}')


if __name__ == '__main__':
    run_cli(main)
