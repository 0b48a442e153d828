"""Command-line overrides that point the detection demo configs at a generated set."""
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FASTER = osp.join(ROOT, 'configs/demo/faster_rcnn_r50_sase_synth.py')
MASK = osp.join(ROOT, 'configs/demo/mask_rcnn_r50_sase_synth.py')


def coco_options(data_root: str, metrics=('bbox', )) -> list:
    data_root = data_root.rstrip('/') + '/'
    val_ann = data_root + 'annotations/instances_val.json'
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        f'val_evaluator.ann_file={val_ann}',
        f'test_evaluator.ann_file={val_ann}',
        'default_hooks.logger.interval=1',
    ]


def run_tool(*args, check=True, env=None):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'),
               **(env or {}))
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True,
                         text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f'{args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}')
    return out
