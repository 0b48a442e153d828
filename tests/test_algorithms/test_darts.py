"""SASESearch: the bi-level train step on a tiny supernet classifier."""
import copy

import pytest
import torch

from _search_toys import single_thread  # noqa: F401 (fixture)
from _search_toys import (build_search_model, build_search_optim_wrapper,
                          tiny_classifier_cfg, toy_batch)

pytestmark = pytest.mark.usefixtures('single_thread')


def search_data(weights_indices=(0, 1, 2, 3), architecture_indices=(4, 5, 6, 7)):
    return dict(weights=toy_batch(weights_indices),
                architecture=toy_batch(architecture_indices))


def state_of(model, optim_wrapper):
    return (copy.deepcopy(model.classifier.state_dict()),
            copy.deepcopy(optim_wrapper['weights'].state_dict()))


def assert_same_state(before, after):
    (weights, optimizer), (weights_after, optimizer_after) = before, after
    for key in weights:
        assert torch.equal(weights[key], weights_after[key]), key
    for index, state in optimizer['state'].items():
        for key, value in state.items():
            assert torch.equal(value, optimizer_after['state'][index][key])
    assert optimizer['param_groups'] == optimizer_after['param_groups']


def test_alpha_is_shared_and_saved_once():
    torch.manual_seed(0)
    model = build_search_model()
    alpha_keys = [k for k in model.state_dict() if 'alpha' in k]
    assert alpha_keys == ['architecture.alpha']
    assert model.num_searchable_blocks == 1
    assert all(p is not model.architecture.alpha for p in model.classifier.parameters())
    assert set(model.derive()) == {'cs', 'ce1', 'ce2', 'ss1', 'ss2', 'se'}


def test_model_without_supernet_is_an_error():
    from mmsase.models.algorithms import SASESearch
    with pytest.raises(ValueError, match='no supernet block.*SASESupernet'):
        SASESearch(architecture=tiny_classifier_cfg(attention=None))


@pytest.mark.parametrize('unroll', [False, True])
def test_architecture_step_leaves_weights_and_weight_optimizer_alone(unroll):
    torch.manual_seed(0)
    model = build_search_model(unroll).train()
    optim_wrapper = build_search_optim_wrapper(model)
    model.train_step(search_data(), optim_wrapper)  # momentum buffers now exist
    before = state_of(model, optim_wrapper)
    alpha_before = model.architecture.alpha.detach().clone()

    data = search_data((8, 9, 10, 11), (12, 13, 14, 15))
    model._update_architecture(
        model.data_preprocessor(data['architecture'], True),
        model.data_preprocessor(data['weights'], True), optim_wrapper)

    assert_same_state(before, state_of(model, optim_wrapper))
    assert not torch.equal(model.architecture.alpha, alpha_before)
    assert all(p.grad is None for p in model.classifier.parameters())


def test_weight_step_does_not_touch_alpha():
    torch.manual_seed(0)
    model = build_search_model().train()
    optim_wrapper = build_search_optim_wrapper(model)
    alpha_before = model.architecture.alpha.detach().clone()
    weights_before = copy.deepcopy(model.classifier.state_dict())

    log_vars = model._update_weights(
        model.data_preprocessor(toy_batch(range(4)), True), optim_wrapper['weights'])

    assert torch.equal(model.architecture.alpha, alpha_before)
    assert model.architecture.alpha.grad is None
    assert model.architecture.alpha.requires_grad
    assert 'loss_weights' in log_vars
    changed = [k for k, v in model.classifier.state_dict().items()
               if not torch.equal(v, weights_before[k])]
    assert 'backbone.conv1.weight' in changed


@pytest.mark.parametrize('unroll', [False, True])
def test_train_step_updates_each_part_with_its_own_optimizer(unroll):
    torch.manual_seed(0)
    model = build_search_model(unroll).train()
    # Only alpha may move when the weight lr is 0, and only the weights when alpha's is.
    frozen_weights = build_search_optim_wrapper(model, weights_lr=0.0)
    weights_before = copy.deepcopy(dict(model.classifier.named_parameters()))
    alpha_before = model.architecture.alpha.detach().clone()
    log_vars = model.train_step(search_data(), frozen_weights)
    assert set(log_vars) >= {'loss_weights', 'loss_arch'}
    assert all(torch.isfinite(v) for v in log_vars.values())
    for name, param in model.classifier.named_parameters():
        assert torch.equal(param, weights_before[name]), name
    assert not torch.equal(model.architecture.alpha, alpha_before)

    frozen_alpha = build_search_optim_wrapper(model, architecture_lr=0.0)
    alpha_before = model.architecture.alpha.detach().clone()
    model.train_step(search_data(), frozen_alpha)
    assert torch.equal(model.architecture.alpha, alpha_before)
    assert not torch.equal(model.classifier.backbone.conv1.weight,
                           weights_before['backbone.conv1.weight'])


def test_first_order_alpha_step_is_adam_on_val_gradient():
    """The alpha step applies exactly d L_val / d alpha through the alpha optimizer."""
    torch.manual_seed(0)
    model = build_search_model().train()
    optim_wrapper = build_search_optim_wrapper(model)
    data = search_data()
    reference = copy.deepcopy(model)
    batch = reference.data_preprocessor(data['architecture'], True)
    loss = reference.classifier.parse_losses(reference.classifier(**batch, mode='loss'))[0]
    alpha = reference.architecture.alpha
    alpha.grad, = torch.autograd.grad(loss, alpha)
    adam = torch.optim.Adam([alpha], lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    adam.step()

    model.train_step(data, optim_wrapper)
    torch.testing.assert_close(model.architecture.alpha, alpha, rtol=0, atol=1e-7)


def test_each_step_reads_its_own_split_and_logs_its_loss():
    """loss_arch is the classifier's loss on the architecture split (at w, first order); the
    weight step is one SGD step on the weight split."""
    torch.manual_seed(0)
    model = build_search_model().train()
    data = search_data()
    reference = copy.deepcopy(model)
    arch_batch = reference.data_preprocessor(data['architecture'], True)
    with torch.no_grad():
        expected_loss_arch = reference.classifier.parse_losses(
            reference.classifier(**arch_batch, mode='loss'))[0]
    reference = copy.deepcopy(model)
    reference_wrappers = build_search_optim_wrapper(reference, architecture_lr=0.0)
    reference._update_weights(reference.data_preprocessor(data['weights'], True),
                              reference_wrappers['weights'])

    log_vars = model.train_step(data, build_search_optim_wrapper(model, architecture_lr=0.0))
    torch.testing.assert_close(log_vars['loss_arch'], expected_loss_arch, rtol=0, atol=1e-6)
    for (name, p), q in zip(model.classifier.named_parameters(),
                            reference.classifier.parameters()):
        assert torch.equal(p, q), name


def test_val_step_and_forward_delegate_to_classifier():
    torch.manual_seed(0)
    model = build_search_model().eval()
    predictions = model.val_step(toy_batch(range(3)))
    assert len(predictions) == 3 and 'pred_score' in predictions[0]
    assert len(model.test_step(toy_batch(range(2)))) == 2
    batch = model.data_preprocessor(toy_batch(range(2)), False)
    assert model(batch['inputs'], mode='tensor').shape == (2, 3)


@pytest.mark.parametrize('setting', [dict(clip_grad=dict(max_norm=1.0)),
                                     dict(accumulative_counts=2)])
def test_unrolled_search_refuses_a_weight_step_it_cannot_model(setting):
    from mmengine.optim import build_optim_wrapper

    from _search_toys import search_optim_wrapper_cfg
    cfg = search_optim_wrapper_cfg()
    cfg['weights'].update(setting)
    model = build_search_model(unroll=True).train()
    alpha_before = model.architecture.alpha.detach().clone()
    with pytest.raises(ValueError, match='one plain SGD step.*model.unroll=False'):
        model.train_step(search_data(), build_optim_wrapper(model, cfg))
    assert torch.equal(model.architecture.alpha, alpha_before)
    first_order = build_search_model(unroll=False).train()  # does not model the weight step
    first_order.train_step(search_data(), build_optim_wrapper(first_order, cfg))
