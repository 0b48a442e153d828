"""Write the genotype of a SASE search checkpoint.

    python tools/derive_genotype.py work_dirs/sase_search/epoch_50.pth [--out genotype.json]

Prints softmax(α) per edge and the derived operations (argmax per edge, spec §4) in the
layout the search logs every epoch, and writes the genotype JSON that every SASE config
accepts (``genotype='genotype.json'``): by default ``epoch_50_genotype.json`` beside the
checkpoint (the search's own ``genotype.json``, that of its last epoch, is left alone), and
beside it the block's diagram as PNG (same name, ``.png``): each edge's operation and weight,
edges whose two largest weights are within ``--margin`` drawn dashed as undecided.
"""
import argparse
import os.path as osp

import torch

from mmsase.models.sase.genotype import save_genotype
from mmsase.models.sase.supernet import ArchitectureParams
from mmsase.utils.checkpoint import load_checkpoint_file
from mmsase.utils.atomic_io import atomic_write
from mmsase.utils.launch import run_cli
from mmsase.visualization.genotype_diagram import DEFAULT_MARGIN, draw_architecture

ALPHA_KEY = 'architecture.alpha'


def find_alpha(checkpoint, filename: str) -> torch.Tensor:
    not_search = f'{filename} is not a SASE search checkpoint'
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{not_search}: it holds a {type(checkpoint).__name__}, not a dict')
    state_dict = checkpoint.get('state_dict', checkpoint)
    keys = [k for k in state_dict if k == ALPHA_KEY or k.endswith('.' + ALPHA_KEY)] \
        if isinstance(state_dict, dict) else []
    if len(keys) != 1:
        raise ValueError(f'{not_search}: expected one "{ALPHA_KEY}" entry in its state_dict, '
                         f'found {keys or "none"}')
    return state_dict[keys[0]]


def default_output(checkpoint: str) -> str:
    stem = osp.splitext(osp.basename(checkpoint))[0]
    return osp.join(osp.dirname(osp.abspath(checkpoint)), f'{stem}_genotype.json')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='checkpoint written by a SASE search run')
    parser.add_argument('--out', help='genotype JSON to write (default: CHECKPOINT_NAME'
                        '_genotype.json beside the checkpoint)')
    parser.add_argument('--margin', type=float, default=DEFAULT_MARGIN,
                        help='edges whose two largest softmax weights differ by less are '
                        f'drawn as undecided (default: {DEFAULT_MARGIN})')
    args = parser.parse_args()

    checkpoint = load_checkpoint_file(args.checkpoint, map_location='cpu')
    alpha = find_alpha(checkpoint, args.checkpoint)
    arch = ArchitectureParams()
    if alpha.shape != arch.alpha.shape:
        raise ValueError(f'{args.checkpoint}: α has shape {tuple(alpha.shape)}, '
                         f'expected {tuple(arch.alpha.shape)} (edges × operations)')
    with torch.no_grad():
        arch.alpha.copy_(alpha)
    genotype = arch.derive()
    print('softmax(alpha) per edge, * = derived:')
    print(arch.table())
    print(f'genotype: {genotype}')
    out = args.out or default_output(args.checkpoint)
    diagram = osp.splitext(out)[0] + '.png'
    if osp.abspath(diagram) == osp.abspath(out):
        raise ValueError(f'--out {out!r} would be overwritten by the diagram; give a .json name')
    metadata = dict(_checkpoint=osp.abspath(args.checkpoint))
    epoch = checkpoint.get('meta', {}).get('epoch')
    if epoch is not None:
        metadata['_epoch'] = epoch
    save_genotype(genotype, out, metadata)
    print(f'genotype written to {out}')
    title = f'SASE genotype of {osp.basename(args.checkpoint)}'
    atomic_write(diagram, draw_architecture(arch, args.margin, title))
    print(f'diagram written to {diagram}')


if __name__ == '__main__':
    run_cli(main)
