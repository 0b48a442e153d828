"""What tools/train.py and tools/test.py do between parsing a config and building a Runner."""
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def setup_work_dir(cfg: Config, config_path: str, work_dir=None) -> None:
    """``--work-dir``, else the config's ``work_dir``, else ``work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def setup_amp(cfg: Config) -> None:
    """Automatic mixed precision: fp16 with loss scaling on CUDA, bfloat16 autocast on CPU."""
    if 'optim_wrapper' not in cfg:
        raise ValueError('--amp needs an optim_wrapper in the config')
    constructor = cfg.optim_wrapper.get('constructor', '')
    if 'SearchOptimWrapperConstructor' in getattr(constructor, '__name__', str(constructor)):
        raise ValueError('--amp is not supported for a SASE search (its optim_wrapper holds '
                         f'{sorted(k for k in cfg.optim_wrapper if k != "constructor")}): the '
                         "architecture step's extra passes run outside the optimizer "
                         'wrappers, so only part of each iteration would be autocast. Run '
                         'the search in float32; --amp applies to the training configs.')
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        cfg.optim_wrapper.type = 'mmsase.CPUAutocastOptimWrapper'


def init_cpu_process_group(launcher: str) -> bool:
    """On a machine without GPUs, join ``--launcher pytorch``'s process group with the gloo
    backend (mmengine's ``init_dist`` would call ``torch.cuda.set_device``); return whether
    this is such a run. With GPUs or ``--launcher none`` nothing is done (False)."""
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise ValueError(f'on a machine without GPUs only --launcher pytorch (torchrun) '
                         f'is supported, got {launcher!r}')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    return True


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Make ``--launcher pytorch`` work without GPUs (gloo backend, CPU DDP).

    mmengine 0.10.7 calls ``torch.cuda.set_device`` while initialising the process
    group and gives DDP ``device_ids=[LOCAL_RANK]``; both fail on a CPU-only machine.
    Here the gloo group is initialised first (mmengine then skips its own), and the
    DDP wrapper is told to use no device ids.
    """
    cfg.launcher = launcher
    if not init_cpu_process_group(launcher):
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg['dist_cfg'] = dict(backend='gloo')

    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper_type = MODEL_WRAPPERS.get(wrapper_cfg.get('type', 'MMDistributedDataParallel'))
    if wrapper_type is not None and issubclass(wrapper_type, DistributedDataParallel):
        wrapper_cfg.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper_cfg


def set_local_rank_env(local_rank: int) -> None:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)


def genotype_blocks() -> dict:
    """Block type name → the search space of the genotype it takes (``--genotype``)."""
    from mmsase.models.autola import AUTOLA_SPACE
    from mmsase.models.sase.genotype import SASE_SPACE
    return {'SASE': SASE_SPACE, 'AutoLA': AUTOLA_SPACE}


def set_genotype(cfg: Config, genotype_path: str) -> int:
    """Point every block of ``cfg.model`` that takes a genotype (SASE, AutoLA) at
    ``genotype_path``; return how many.

    The file is validated first against the space of the config's blocks, so a bad genotype
    fails before anything is built.
    """
    spaces = genotype_blocks()
    found = []

    def visit(node) -> None:
        if isinstance(node, dict):
            block_type = node.get('type', '')
            name = block_type.__name__ if isinstance(block_type, type) \
                else str(block_type).split('.')[-1]
            if name in spaces:
                found.append((name, node))
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(cfg.model)
    if not found:
        raise ValueError('--genotype was given but the config\'s model has no block that takes '
                         f'a genotype (type {" or ".join(map(repr, spaces))})')
    for name, node in found:
        spaces[name].load(genotype_path)
        node['genotype'] = genotype_path
    return len(found)


def backbone_stage_blocks(backbone: dict) -> tuple:
    """The residual blocks per stage of an ``mmsase.AttentionResNet`` or ``mmsase.CifarResNet``
    config, without building it."""
    from mmsase.models.backbones import AttentionResNet
    from mmsase.models.backbones.cifar_resnet import CIFAR_BLOCKS
    name = str(backbone.get('type', '')).split('.')[-1]
    if name == 'AttentionResNet':
        depth = backbone.get('depth')
        if depth not in AttentionResNet.arch_settings:
            raise KeyError(f'AttentionResNet depth must be one of '
                           f'{sorted(AttentionResNet.arch_settings)}, got {depth!r}')
        return AttentionResNet.arch_settings[depth][1][:backbone.get('num_stages', 4)]
    block = backbone.get('block', 'basic')
    layers = CIFAR_BLOCKS[block][1] if block in CIFAR_BLOCKS else 2
    return ((backbone.get('depth', 20) - 2) // (3 * layers), ) * 3


def set_connection_code(cfg: Config, code_path: str) -> str:
    """Give ``cfg.model.backbone`` the EAN connection code of ``code_path`` (a JSON file of
    :meth:`mmsase.models.ean.ConnectionCode.save`); return the code as set (per-stage bit
    strings joined by '-').

    The file is checked against the backbone's stages first, so a bad code fails before
    anything is built; the config then holds the code itself, not the file's path.
    """
    from mmsase.models.ean.code import ConnectionCode
    backbone = cfg.model.get('backbone') if isinstance(cfg.get('model'), dict) else None
    name = str((backbone or {}).get('type', '')).split('.')[-1]
    if name not in ('AttentionResNet', 'CifarResNet') or backbone.get('attention') is None:
        raise ValueError("--connection-code was given but the config's model has no "
                         'mmsase.AttentionResNet or mmsase.CifarResNet backbone with an '
                         'attention block (model.backbone.attention)')
    code = ConnectionCode.load(code_path, backbone_stage_blocks(backbone))
    backbone['connection_code'] = code.to_string('-')
    return backbone['connection_code']


def _user_errors() -> tuple:
    from .checkpoint import CheckpointError
    return (ValueError, FileNotFoundError, KeyError, CheckpointError)


def run_cli(main) -> None:
    """Run a tool's ``main``; bad input ends with its message, not a deep traceback.

    Set ``MMSASE_DEBUG=1`` to see the full traceback.
    """
    import sys
    if os.environ.get('MMSASE_DEBUG'):
        main()
        return
    try:
        main()
    except _user_errors() as e:  # configs, data roots, genotypes, checkpoints
        print(f'error: {type(e).__name__}: {e}\n(set MMSASE_DEBUG=1 for the full '
              'traceback)', file=sys.stderr)
        sys.exit(1)


def add_common_arguments(parser, cfg_example: str) -> None:
    """The flags tools/train.py and tools/test.py share (named as in mmdet's tools)."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help=f'override config keys, e.g. {cfg_example}')
    parser.add_argument(
        '--genotype', help='genotype JSON for every SASE block of the model '
        '(from a search work dir or tools/derive_genotype.py)')
    parser.add_argument(
        '--connection-code', help='EAN connection code JSON for the model\'s backbone '
        '(which blocks apply the shared attention; from the EAN search or '
        'configs/ean/codes/)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def resolve_config_arg(args) -> str:
    """Point ``args.config`` at the config file to load, and return it.

    A path that exists is kept. One that does not but names a shipped config (the flat
    ``configs/faster_rcnn_r50_sase_1x_coco.py`` of the design card, a bare file name, a
    config in another folder) becomes that config's path, printed as one line (by the
    first process only under a launcher). Anything else raises ``FileNotFoundError`` whose
    message lists the closest shipped config names; :func:`run_cli` prints it as one
    ``error:`` line. See :func:`mmsase.resolve_config`.
    """
    from mmsase import resolve_config
    resolved = resolve_config(args.config)
    if resolved != args.config:
        if os.environ.get('RANK', '0') == '0':
            print(f'config: {args.config} -> {resolved}', flush=True)
        args.config = resolved
    return resolved


def prepare_config(args) -> Config:
    """Load ``args.config`` and apply the shared flags, in the order mmdet's tools do."""
    set_local_rank_env(args.local_rank)
    resolve_config_arg(args)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.genotype is not None:
        set_genotype(cfg, args.genotype)
    if getattr(args, 'connection_code', None) is not None:
        set_connection_code(cfg, args.connection_code)
    setup_launcher(cfg, args.launcher)
    setup_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        setup_amp(cfg)
    return cfg
