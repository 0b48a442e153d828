"""Write the genotype of a search checkpoint (SASE's or AutoLA's search space).

    python tools/derive_genotype.py work_dirs/sase_search/epoch_50.pth [--out genotype.json]
    python tools/derive_genotype.py CHECKPOINT --method pt --config SEARCH_CONFIG
        [--max-batches N] [--criterion {acc,loss}] [--seed S] [--tune-iters T]

Prints softmax(α) per edge and the derived operations in the layout the search logs every
epoch, and writes the genotype JSON that every SASE config accepts
(``genotype='genotype.json'``): by default ``epoch_50_genotype.json`` beside the checkpoint
(the search's own ``genotype.json``, that of its last epoch, is left alone), and beside it the
block's diagram as PNG (same name, ``.png``; SASE only). The search space is recognised by the
shape of ``α`` (SASE 6×7, AutoLA 10×9); AutoLA's genotype passes over ``none``.

``--method argmax`` (default) keeps the op with the largest α on each edge (spec §4); the
diagram shows each edge's operation and weight, edges whose two largest weights are within
``--margin`` drawn dashed as undecided.

``--method pt`` is DARTS-PT's perturbation-based selection
(:mod:`mmsase.models.algorithms.perturbation_selection`): it builds the search's model from
``--config`` (the config the search ran with; ``--cfg-options`` as for tools/train.py), loads
the checkpoint's weights and, edge by edge in a seeded random order, keeps the operation whose
masking lowers the accuracy on the architecture split most (``train_cfg.arch_dataloader``,
its first ``--max-batches`` batches). It prints each edge's accuracies with every op masked
and the kept op beside the argmax one; the diagram shows the kept ops.
"""
import argparse
import itertools
import os.path as osp

import torch

from mmsase.models.algorithms.perturbation_selection import CRITERIA, select_by_perturbation
from mmsase.models.algorithms.architecture_params import ArchitectureParams
from mmsase.models.algorithms.spaces import space_of_alpha
from mmsase.utils.checkpoint import load_checkpoint_file
from mmsase.utils.atomic_io import atomic_write
from mmsase.utils.launch import run_cli
from mmsase.visualization.genotype_diagram import DEFAULT_MARGIN, can_draw, draw_genotype

ALPHA_KEY = 'architecture.alpha'
METHODS = ('argmax', 'pt')
#: --method pt's options and their defaults; with --method argmax none may be given.
PT_DEFAULTS = dict(config=None, cfg_options=None, max_batches=None, criterion='acc', seed=0,
                   tune_iters=0)


def find_alpha_key(checkpoint, filename: str) -> str:
    """The state dict key of ``α`` (``architecture.alpha``, possibly under a prefix)."""
    not_search = f'{filename} is not a search checkpoint (SASE, AutoLA)'
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{not_search}: it holds a {type(checkpoint).__name__}, not a dict')
    state_dict = checkpoint.get('state_dict', checkpoint)
    keys = [k for k in state_dict if k == ALPHA_KEY or k.endswith('.' + ALPHA_KEY)] \
        if isinstance(state_dict, dict) else []
    if len(keys) != 1:
        raise ValueError(f'{not_search}: expected one "{ALPHA_KEY}" entry in its state_dict, '
                         f'found {keys or "none"}')
    return keys[0]


def find_alpha(checkpoint, filename: str) -> torch.Tensor:
    key = find_alpha_key(checkpoint, filename)
    return checkpoint.get('state_dict', checkpoint)[key]


def default_output(checkpoint: str) -> str:
    stem = osp.splitext(osp.basename(checkpoint))[0]
    return osp.join(osp.dirname(osp.abspath(checkpoint)), f'{stem}_genotype.json')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='checkpoint written by a search run (SASE, AutoLA)')
    parser.add_argument('--out', help='genotype JSON to write (default: CHECKPOINT_NAME'
                        '_genotype.json beside the checkpoint)')
    parser.add_argument('--margin', type=float, default=DEFAULT_MARGIN,
                        help='edges whose two largest softmax weights differ by less are '
                        f'drawn as undecided (default: {DEFAULT_MARGIN})')
    parser.add_argument('--method', choices=METHODS, default='argmax',
                        help='argmax: the largest α per edge (default); pt: DARTS-PT '
                        'perturbation-based selection (needs --config)')
    pt = parser.add_argument_group('--method pt (DARTS-PT)')
    pt.add_argument('--config', help='the search config (builds the model and the '
                    'architecture split\'s loader, train_cfg.arch_dataloader)')
    pt.add_argument('--cfg-options', nargs='+', action=DictAction,
                    help='override config keys, e.g. train_cfg.arch_dataloader.batch_size=256')
    pt.add_argument('--max-batches', type=int,
                    help='evaluate on the first N batches of the architecture split '
                    '(default: all)')
    pt.add_argument('--criterion', choices=CRITERIA,
                    help='keep the op whose masking gives the lowest accuracy (acc, default) '
                    'or the highest loss (loss)')
    pt.add_argument('--seed', type=int, help='seeds the edge order and the architecture '
                    'loader (default: 0)')
    pt.add_argument('--tune-iters', type=int,
                    help='SGD iterations on the weights (weight split, lr = the search\'s '
                    'weight lr / 10) between edges (default: 0)')
    return parser.parse_args(argv)  # pt's options default to None: check_method_options


def check_method_options(args) -> None:
    """Fill in --method pt's defaults; reject its options with argmax and bad values."""
    given = [name for name in PT_DEFAULTS if getattr(args, name) is not None]
    if args.method == 'argmax':
        if given:
            flags = ', '.join('--' + name.replace('_', '-') for name in given)
            raise ValueError(f'{flags} given with --method argmax; they apply to --method pt '
                             'only')
        return
    if args.config is None:
        raise ValueError('--method pt needs --config CONFIG, the config the search ran with '
                         '(it builds the model and the architecture split\'s data loader)')
    for name, default in PT_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.max_batches is not None and args.max_batches < 1:
        raise ValueError(f'--max-batches must be >= 1, got {args.max_batches}')
    if args.tune_iters < 0:
        raise ValueError(f'--tune-iters must be >= 0, got {args.tune_iters}')


def derive_by_argmax(arch: ArchitectureParams, args):
    """The argmax genotype, the weights its diagram shows (softmax(α)) and no metadata."""
    return arch.derive(), arch.probabilities().detach().tolist(), {}


def derive_by_perturbation(arch: ArchitectureParams, checkpoint: dict, args):
    """The DARTS-PT genotype, the weights its diagram shows (the kept ops, one-hot) and its
    metadata."""
    cfg = load_search_config(args)
    model = build_search_model(cfg, checkpoint, args)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model.to(device)
    batches = list(itertools.islice(build_loader(cfg.train_cfg.arch_dataloader, args.seed),
                                    args.max_batches))
    tune = {}
    if args.tune_iters > 0:
        tune = dict(tune_batches=build_loader(cfg.train_dataloader, args.seed),
                    tune_iters=args.tune_iters, tune_lr=search_weight_lr(cfg, args) / 10)
    images = sum(len(batch['data_samples']) for batch in batches)
    print(f'DARTS-PT: criterion {args.criterion}, seed {args.seed}, tune_iters '
          f'{args.tune_iters}, on {len(batches)} batches ({images} images) of the '
          f'architecture split ({device})', flush=True)
    result = select_by_perturbation(model, batches, args.criterion, args.seed, **tune)
    print(measurement_table(result, arch.derive()))
    genotype = result.genotype
    one_hot = [[float(name == genotype[edge]) for name in arch.op_names[edge]]
               for edge in arch.space.edges]
    metadata = dict(_method='pt', _config=osp.abspath(args.config),
                    _criterion=args.criterion, _seed=args.seed, _tune_iters=args.tune_iters,
                    _images=images, _edge_order=list(result.edge_order))
    return genotype, one_hot, metadata


def measurement_table(result, argmax_genotype: dict) -> str:
    """Per edge in the order visited: each op's accuracy (%) and loss with it masked
    (``*`` = kept), then the kept op beside the argmax op."""
    lines = ['accuracy % / loss on the architecture split with each op masked, per edge in '
             'the order visited (* = kept):']
    width = max(len(edge) for edge in result.edge_order) + 1
    for position, edge in enumerate(result.edge_order, 1):
        measured = result.measurements[edge]
        cells = [f'{"*" if name == measured.kept else " "}{name} {100 * acc:.2f}/{loss:.4f}'
                 for name, acc, loss in zip(measured.op_names, measured.accuracies,
                                            measured.losses)]
        lines.append(f'{position}. {edge:<{width}}' + '  '.join(cells))
        lines.append(f'   {"":<{width}}kept {measured.kept}, argmax {argmax_genotype[edge]}'
                     + ('' if measured.kept == argmax_genotype[edge] else ' (differs)'))
    return '\n'.join(lines)


def load_search_config(args):
    """The search config, prepared as tools/train.py prepares it (shipped config names
    resolved, ``--cfg-options`` merged, custom modules imported, default scope set)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmsase.datasets  # noqa: F401  (registers the data sets a search config names)
    from mmsase.utils.launch import resolve_config_arg
    resolve_config_arg(args)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if 'arch_dataloader' not in cfg.get('train_cfg', {}):
        raise ValueError(f'{args.config} is not a search config: it has no '
                         'train_cfg.arch_dataloader (the architecture split)')
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


def build_search_model(cfg, checkpoint: dict, args):
    """The config's ``SASESearch`` with the checkpoint's weights and α."""
    from mmsase.models.algorithms import SASESearch
    from mmsase.registry import MODELS
    model = MODELS.build(cfg.model)
    if not isinstance(model, SASESearch):
        raise ValueError(f'{args.config}: model is a {type(model).__name__}, not a '
                         'mmsase.SASESearch')
    state_dict = checkpoint.get('state_dict', checkpoint)
    prefix = find_alpha_key(checkpoint, args.checkpoint)[:-len(ALPHA_KEY)]
    state_dict = {key[len(prefix):]: value for key, value in state_dict.items()
                  if key.startswith(prefix)}
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # shapes differ
        raise ValueError(f'{args.checkpoint} does not fit the model of {args.config}: '
                         f'{e}') from e
    if missing or unexpected:
        raise ValueError(f'{args.checkpoint} does not fit the model of {args.config}: '
                         f'missing keys {missing[:5]}, unexpected keys {unexpected[:5]}')
    return model


def build_loader(loader_cfg, seed: int):
    """A data loader of the config, its shuffling and main-process augmentation seeded."""
    from mmengine.runner import Runner, set_random_seed
    set_random_seed(seed)
    return Runner.build_dataloader(loader_cfg, seed=seed)


def search_weight_lr(cfg, args) -> float:
    try:
        return float(cfg.optim_wrapper.weights.optimizer.lr)
    except (AttributeError, KeyError, TypeError) as e:
        raise ValueError(f'--tune-iters needs the search\'s weight learning rate, '
                         f'optim_wrapper.weights.optimizer.lr, which {args.config} lacks') \
            from e


def main(argv=None):
    args = parse_args(argv)
    check_method_options(args)
    checkpoint = load_checkpoint_file(args.checkpoint, map_location='cpu')
    alpha = find_alpha(checkpoint, args.checkpoint)
    try:
        space = space_of_alpha(alpha.shape)
    except ValueError as e:
        raise ValueError(f'{args.checkpoint}: α has shape {tuple(alpha.shape)}: {e}') from e
    arch = ArchitectureParams(space=space)
    with torch.no_grad():
        arch.alpha.copy_(alpha)
    out = args.out or default_output(args.checkpoint)
    diagram_path = osp.splitext(out)[0] + '.png' if can_draw(arch) else None
    if diagram_path is not None and osp.abspath(diagram_path) == osp.abspath(out):
        raise ValueError(f'--out {out!r} would be overwritten by the diagram; give a .json name')
    print('softmax(alpha) per edge, * = derived:')
    print(arch.table())
    if args.method == 'pt':
        genotype, shown, method_metadata = derive_by_perturbation(arch, checkpoint, args)
    else:
        genotype, shown, method_metadata = derive_by_argmax(arch, args)
    print(f'genotype: {genotype}')
    metadata = dict(_checkpoint=osp.abspath(args.checkpoint), **method_metadata)
    epoch = checkpoint.get('meta', {}).get('epoch')
    if epoch is not None:
        metadata['_epoch'] = epoch
    space.save(genotype, out, metadata)
    print(f'genotype written to {out}')
    if diagram_path is not None:
        title = f'SASE genotype of {osp.basename(args.checkpoint)}' + (
            f' (DARTS-PT, {args.criterion})' if args.method == 'pt' else '')
        atomic_write(diagram_path, draw_genotype(shown, arch.op_names, args.margin, title))
        print(f'diagram written to {diagram_path}')


if __name__ == '__main__':
    run_cli(main)
