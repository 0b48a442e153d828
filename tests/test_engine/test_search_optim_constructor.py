"""SearchOptimWrapperConstructor: one optimizer for the weights, one for alpha."""
import pytest
import torch
from mmengine.optim import OptimWrapperDict, build_optim_wrapper

from _search_toys import build_search_model, search_optim_wrapper_cfg


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return build_search_model()


def params_of(optim_wrapper):
    return [p for group in optim_wrapper.optimizer.param_groups for p in group['params']]


def test_parameter_sets_are_disjoint_and_complete(model):
    optim_wrapper = build_optim_wrapper(model, search_optim_wrapper_cfg())
    assert isinstance(optim_wrapper, OptimWrapperDict)
    assert set(optim_wrapper.keys()) == {'weights', 'architecture'}
    weights = {id(p) for p in params_of(optim_wrapper['weights'])}
    architecture = {id(p) for p in params_of(optim_wrapper['architecture'])}
    assert architecture == {id(model.architecture.alpha)}
    assert weights == {id(p) for p in model.classifier.parameters()}
    assert not weights & architecture
    assert weights | architecture == {id(p) for p in model.parameters()}
    assert isinstance(optim_wrapper['weights'].optimizer, torch.optim.SGD)
    assert isinstance(optim_wrapper['architecture'].optimizer, torch.optim.Adam)
    assert optim_wrapper['architecture'].optimizer.defaults['betas'] == (0.5, 0.999)


def test_wrapped_model_and_paramwise_cfg(model):
    from mmsase.engine.model_wrappers import SearchDataParallel
    cfg = search_optim_wrapper_cfg()
    cfg['weights']['paramwise_cfg'] = dict(norm_decay_mult=0.0)
    optim_wrapper = build_optim_wrapper(SearchDataParallel(model), cfg)
    decays = {group['weight_decay']
              for group in optim_wrapper['weights'].optimizer.param_groups}
    assert decays == {0.0, 5e-4}


def test_wrong_keys_are_rejected(model):
    cfg = search_optim_wrapper_cfg()
    del cfg['architecture']
    with pytest.raises(ValueError, match='architecture'):
        build_optim_wrapper(model, cfg)


def test_every_parameter_in_exactly_one_optimizer(model):
    import copy
    orphan = copy.deepcopy(model)
    orphan.extra = torch.nn.Parameter(torch.zeros(1))  # under neither part
    with pytest.raises(ValueError, match=r"parameters in no optimizer: \['extra'\]"):
        build_optim_wrapper(orphan, search_optim_wrapper_cfg())
    shared = copy.deepcopy(model)
    shared.architecture.stolen = shared.classifier.head.fc.bias  # under both parts
    with pytest.raises(ValueError, match="in both the 'weights' and the 'architecture'"):
        build_optim_wrapper(shared, search_optim_wrapper_cfg())


def test_each_part_may_name_its_own_constructor(model):
    from mmengine.optim import DefaultOptimWrapperConstructor

    from mmsase.registry import OPTIM_WRAPPER_CONSTRUCTORS
    built_for = []

    class RecordingConstructor(DefaultOptimWrapperConstructor):
        def __call__(self, module):
            built_for.append(module)
            return super().__call__(module)

    OPTIM_WRAPPER_CONSTRUCTORS.register_module(
        name='_RecordingConstructor', module=RecordingConstructor, force=True)
    cfg = search_optim_wrapper_cfg()
    # scoped, as a config must name it: the search configs' default scope is mmpretrain's
    cfg['weights']['constructor'] = 'mmsase._RecordingConstructor'
    build_optim_wrapper(model, cfg)
    assert built_for == [model.classifier]
