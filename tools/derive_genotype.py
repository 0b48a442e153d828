"""Write the genotype of a SASE search checkpoint.

    python tools/derive_genotype.py work_dirs/sase_search/epoch_50.pth [--out genotype.json]

Prints softmax(α) per edge and the derived operations (argmax per edge, spec §4), and
writes the genotype JSON that every SASE config accepts (``genotype='genotype.json'``).
"""
import argparse
import os.path as osp

import torch

from mmsase.models.sase.genotype import save_genotype
from mmsase.models.sase.supernet import ArchitectureParams
from mmsase.models.search_space import EDGE_OP_SET, EDGES, OP_SETS
from mmsase.utils.checkpoint import install_checkpoint_safety, load_checkpoint_file

ALPHA_KEY = 'architecture.alpha'


def find_alpha(state_dict: dict, filename: str) -> torch.Tensor:
    keys = [k for k in state_dict if k == ALPHA_KEY or k.endswith('.' + ALPHA_KEY)]
    if len(keys) != 1:
        raise SystemExit(
            f'error: {filename} is not a SASE search checkpoint: expected one '
            f'"{ALPHA_KEY}" entry in its state_dict, found {keys or "none"}')
    return state_dict[keys[0]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='checkpoint written by a SASE search run')
    parser.add_argument('--out', help='genotype JSON to write (default: genotype.json '
                        'beside the checkpoint)')
    args = parser.parse_args()

    install_checkpoint_safety()
    checkpoint = load_checkpoint_file(args.checkpoint, map_location='cpu')
    state_dict = checkpoint.get('state_dict', checkpoint)
    arch = ArchitectureParams()
    alpha = find_alpha(state_dict, args.checkpoint)
    if alpha.shape != arch.alpha.shape:
        raise SystemExit(f'error: {args.checkpoint}: α has shape {tuple(alpha.shape)}, '
                         f'expected {tuple(arch.alpha.shape)} (edges × operations)')
    with torch.no_grad():
        arch.alpha.copy_(alpha)
    probs = arch.probabilities()
    genotype = arch.derive()
    for i, edge in enumerate(EDGES):
        ops = list(OP_SETS[EDGE_OP_SET[edge]])
        weights = '  '.join(f'{op}={p:.3f}' for op, p in zip(ops, probs[i].tolist()))
        print(f'{edge:>4}: {genotype[edge]:<11} | {weights}')
    out = args.out or osp.join(osp.dirname(osp.abspath(args.checkpoint)), 'genotype.json')
    save_genotype(genotype, out)
    print(f'genotype written to {out}')


if __name__ == '__main__':
    main()
