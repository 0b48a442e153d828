"""Two optimizers for a DARTS search: one for the network weights, one for ``alpha``."""
import copy
from typing import Dict

from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import nn

from mmsase.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: optimizer name -> the attribute of the search model holding its parameters.
SEARCH_PARTS: Dict[str, str] = {
    'weights': 'classifier',
    'architecture': 'architecture',
}


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SearchOptimWrapperConstructor:
    """Builds ``OptimWrapperDict(weights=..., architecture=...)`` for ``SASESearch``.

    ``weights`` optimises ``model.classifier``, ``architecture`` optimises
    ``model.architecture`` (``alpha``); the two sets are disjoint and together cover every
    parameter of the model. Each part is an ordinary optim-wrapper config (``type``,
    ``optimizer``, optional ``paramwise_cfg``, ``clip_grad``...) built by mmengine's
    ``DefaultOptimWrapperConstructor``, or by the ``constructor`` it names.

    Config (the paper's setting, spec §4)::

        optim_wrapper = dict(
            constructor='mmsase.SearchOptimWrapperConstructor',
            weights=dict(optimizer=dict(type='SGD', lr=0.025, momentum=0.9,
                                        weight_decay=5e-4)),
            architecture=dict(optimizer=dict(type='Adam', lr=3e-4, betas=(0.5, 0.999),
                                             weight_decay=1e-3)))
        # schedulers per optimizer; an empty list keeps alpha's lr constant
        param_scheduler = dict(
            weights=[dict(type='CosineAnnealingLR', T_max=50, eta_min=1e-4, by_epoch=True)],
            architecture=[])

    The unrolled step reads the weight optimizer's lr, momentum and weight decay: keep it
    a plain momentum SGD with one learning rate.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None) -> None:
        if paramwise_cfg is not None:
            raise ValueError('give paramwise_cfg inside optim_wrapper.weights or '
                             'optim_wrapper.architecture, not at the top level')
        names = set(optim_wrapper_cfg)
        if names != set(SEARCH_PARTS):
            raise ValueError(
                'SearchOptimWrapperConstructor needs exactly the optim wrapper configs '
                f'{sorted(SEARCH_PARTS)}, got {sorted(names)}')
        self.optim_wrapper_cfgs = copy.deepcopy(optim_wrapper_cfg)

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        optim_wrappers = {}
        for name, attribute in SEARCH_PARTS.items():
            cfg = copy.deepcopy(self.optim_wrapper_cfgs[name])
            constructor_type = cfg.pop('constructor',
                                       'DefaultOptimWrapperConstructor')
            paramwise_cfg = cfg.pop('paramwise_cfg', None)
            constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
                dict(
                    type=constructor_type,
                    optim_wrapper_cfg=cfg,
                    paramwise_cfg=paramwise_cfg))
            optim_wrappers[name] = constructor(getattr(model, attribute))
        _check_partition(model, optim_wrappers)
        return OptimWrapperDict(**optim_wrappers)


def _check_partition(model: nn.Module, optim_wrappers: dict) -> None:
    """Every trainable parameter of ``model`` in exactly one optimizer."""
    owners: Dict[int, str] = {}
    for name, wrapper in optim_wrappers.items():
        for group in wrapper.optimizer.param_groups:
            for param in group['params']:
                if id(param) in owners:
                    raise ValueError(f'a parameter is in both the {owners[id(param)]!r} '
                                     f'and the {name!r} optimizer')
                owners[id(param)] = name
    orphans = [n for n, p in model.named_parameters()
               if p.requires_grad and id(p) not in owners]
    if orphans:
        raise ValueError(f'parameters in no optimizer: {orphans}; the search model '
                         f'must keep its parameters under {set(SEARCH_PARTS.values())}')
