"""Draw a SASE genotype uniformly at random (the paper's random-search ablation, spec §4).

    python tools/random_genotype.py --seed 0 --out work_dirs/random_seed0.json
    python tools/train.py configs/sase/resnet50_sase_in1k.py --genotype work_dirs/random_seed0.json
"""
import argparse

from mmsase.models.sase.genotype import random_genotype, save_genotype
from mmsase.utils.launch import run_cli


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seed', type=int, required=True, help='random seed')
    parser.add_argument('--out', required=True, help='genotype JSON to write')
    args = parser.parse_args()
    genotype = random_genotype(args.seed)
    save_genotype(genotype, args.out, dict(_random_seed=args.seed))
    print(' '.join(f'{edge}={op}' for edge, op in genotype.items()))
    print(f'genotype written to {args.out}')


if __name__ == '__main__':
    run_cli(main)
