"""The collapse countermeasures of SASESearch: each formula against a computation written here,
and their place in the bi-level step (warm-up, architecture loss only, weight step only)."""
import copy
import math

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

from _search_toys import single_thread  # noqa: F401 (fixture)
from _search_toys import build_search_optim_wrapper, tiny_search_cfg, toy_batch

pytestmark = pytest.mark.usefixtures('single_thread')


def build(**options):
    from mmsase.registry import MODELS
    cfg = tiny_search_cfg(options.pop('unroll', False))
    cfg.update(options)
    return MODELS.build(cfg)


def set_progress(epoch, max_epochs=10, iteration=0):
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', epoch)
    hub.update_info('max_epochs', max_epochs)
    hub.update_info('iter', iteration)


def search_data(offset=0):
    return dict(weights=toy_batch(range(offset, offset + 4)),
                architecture=toy_batch(range(offset + 4, offset + 8)))


# --------------------------------------------------------------------------- formulas

def test_beta_decay_loss_is_mean_logsumexp_and_its_centred_form():
    from mmsase.models.algorithms.countermeasures import beta_decay_loss
    alpha = torch.randn(6, 7, dtype=torch.float64)
    rows = [math.log(sum(math.exp(a) for a in row)) for row in alpha.tolist()]
    assert beta_decay_loss(alpha).item() == pytest.approx(sum(rows) / 6, rel=1e-12)
    centred = [r - sum(row) / 7 for r, row in zip(rows, alpha.tolist())]
    assert beta_decay_loss(alpha, centred=True).item() == pytest.approx(sum(centred) / 6,
                                                                          rel=1e-12)
    # gradients: softmax / E, and (softmax − 1/K) / E
    for centred_form, shift in ((False, 0.0), (True, 1 / 7)):
        a = alpha.clone().requires_grad_()
        beta_decay_loss(a, centred_form).backward()
        expected = (alpha.exp() / alpha.exp().sum(1, keepdim=True) - shift) / 6
        torch.testing.assert_close(a.grad, expected)


def test_zero_one_loss_is_minus_mean_squared_distance_from_one_half():
    from mmsase.models.algorithms.countermeasures import zero_one_loss
    alpha = torch.randn(6, 7, dtype=torch.float64)
    sig = [[1 / (1 + math.exp(-a)) for a in row] for row in alpha.tolist()]
    expected = -sum((s - 0.5) ** 2 for row in sig for s in row) / 42
    assert zero_one_loss(alpha).item() == pytest.approx(expected, rel=1e-12)


def test_smoothing_clips_and_renormalises_softmax_rows_only():
    from mmsase.models.algorithms.countermeasures import smooth_weights
    weights = torch.tensor([[0.7, 0.2, 0.1], [0.05, 0.05, 0.9]])
    noise = torch.tensor([[0.4, -0.3, 0.0], [-0.1, 0.2, 0.05]])
    clipped = [[1.0, 0.0, 0.1], [0.0, 0.25, 0.95]]
    expected = torch.tensor([[c / sum(row) for c in row] for row in clipped])
    torch.testing.assert_close(smooth_weights(weights, noise, renormalise=True), expected)
    torch.testing.assert_close(smooth_weights(weights, noise, renormalise=False),
                               torch.tensor(clipped))


def test_schedules_ramp_after_warmup_like_the_authors():
    from mmsase.models.algorithms.countermeasures import Countermeasures, SearchProgress
    measures = Countermeasures(warmup_epochs=2, beta_decay=dict(max_weight=20.0),
                               random_smoothing=dict(max_epsilon=0.3, min_epsilon=0.03))
    alpha = torch.zeros(6, 7)
    for epoch, beta in ((0, 0.0), (2, 0.0), (4, 5.0), (9, 17.5)):
        progress = SearchProgress(epoch, 10, 0)
        term = measures.regularisers(alpha, progress)['loss_beta_decay']
        assert term.item() == pytest.approx(beta * math.log(7), rel=1e-6)
        # SDARTS: ε = 0.03 + (0.3 − 0.03) · epoch / epochs, from the first epoch
        assert measures.smoothing_epsilon(progress) == pytest.approx(
            0.03 + 0.27 * epoch / 10)
    assert measures.architecture_frozen(SearchProgress(1, 10, 0))
    assert not measures.architecture_frozen(SearchProgress(2, 10, 0))


def test_smoothing_noise_depends_on_seed_and_iteration_only():
    from mmsase.models.algorithms.countermeasures import Countermeasures, SearchProgress
    measures = Countermeasures(random_smoothing=dict(max_epsilon=0.2, min_epsilon=0.2))
    progress = SearchProgress(3, 10, 17)
    torch.manual_seed(0)
    first = measures.smoothing_noise((6, 7), progress)
    torch.manual_seed(1)  # the global RNG plays no part
    assert torch.equal(first, measures.smoothing_noise((6, 7), progress))
    assert not torch.equal(first, measures.smoothing_noise((6, 7), SearchProgress(3, 10, 18)))
    assert first.abs().max() <= 0.2 and first.abs().max() > 0.1
    # the draw: U(−ε, ε) from a generator seeded with SeedSequence([seed, iteration])
    seed = int(np.random.SeedSequence([0, 17]).generate_state(1)[0])
    reference = (torch.rand((6, 7), generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float64) * 2 - 1) * 0.2
    torch.testing.assert_close(first, reference)


@pytest.mark.parametrize('options, message', [
    (dict(warmup_epochs=-1), 'warmup_epochs'),
    (dict(beta_decay=dict(max_wieght=1.0)), "unknown beta_decay option.*max_wieght"),
    (dict(random_smoothing=dict(max_epsilon=2.0)), 'max_epsilon'),
    (dict(fair_darts='yes'), 'fair_darts must be a dict'),
])
def test_bad_options_name_the_value(options, message):
    from mmsase.models.algorithms.countermeasures import Countermeasures
    with pytest.raises((ValueError, TypeError), match=message):
        Countermeasures(**options)


# ------------------------------------------------------------------ in the search step

def test_warmup_trains_weights_only_and_leaves_alpha_optimizer_untouched():
    torch.manual_seed(0)
    model = build(warmup_epochs=1).train()
    optim_wrapper = build_search_optim_wrapper(model)
    alpha = model.architecture.alpha.detach().clone()
    weights = copy.deepcopy(model.classifier.state_dict())
    set_progress(epoch=0)
    log_vars = model.train_step(search_data(), optim_wrapper)
    assert 'loss_arch' not in log_vars and 'loss_weights' in log_vars
    assert torch.equal(model.architecture.alpha, alpha)
    assert optim_wrapper['architecture'].optimizer.state == {}
    assert not torch.equal(model.classifier.state_dict()['backbone.conv1.weight'],
                           weights['backbone.conv1.weight'])
    set_progress(epoch=1)
    assert 'loss_arch' in model.train_step(search_data(8), optim_wrapper)
    assert not torch.equal(model.architecture.alpha, alpha)


@pytest.mark.parametrize('unroll', [False, True])
def test_regularisers_add_their_gradient_to_the_architecture_step_only(unroll):
    """α's optimizer sees ∇L_arch + λ∇L_β + w01·∇L01 (compared via SGD lr 1 on α); the
    weight step from the same α is the same with and without them."""
    from mmsase.models.algorithms.countermeasures import (SearchProgress, beta_decay_loss,
                                                          zero_one_loss)
    progress = SearchProgress(epoch=3, max_epochs=5, iteration=0)  # β ramp: 8 · 3 / 5
    data = search_data()
    results = {}
    for name, options in (('plain', {}), ('regularised', dict(
            beta_decay=dict(max_weight=8.0), fair_darts=dict(zero_one_weight=10.0)))):
        torch.manual_seed(0)
        model = build(unroll=unroll, **options).train()
        if name == 'plain':
            model.architecture.weighting = 'sigmoid'  # the same forward as FairDARTS'
        optim_wrapper = build_search_optim_wrapper(model)
        optim_wrapper['architecture'].optimizer = torch.optim.SGD(
            [model.architecture.alpha], lr=1.0)
        weights_batch = model.data_preprocessor(data['weights'], True)
        model._update_weights(weights_batch, optim_wrapper['weights'], progress)
        alpha = model.architecture.alpha.detach().clone()
        log_vars = model._update_architecture(
            model.data_preprocessor(data['architecture'], True), weights_batch,
            optim_wrapper, progress)
        results[name] = (alpha, alpha - model.architecture.alpha.detach(),
                         copy.deepcopy(model.classifier.state_dict()), log_vars)
    alpha, plain_step, plain_weights, _ = results['plain']
    _, step, weights, log_vars = results['regularised']
    a = alpha.clone().requires_grad_()
    (8.0 * 3 / 5 * beta_decay_loss(a) + 10.0 * zero_one_loss(a)).backward()
    torch.testing.assert_close(step - plain_step, a.grad, rtol=1e-4, atol=1e-6)
    assert log_vars['loss_beta_decay'].item() == pytest.approx(
        8.0 * 3 / 5 * beta_decay_loss(alpha).item(), rel=1e-5)
    assert log_vars['loss_zero_one'].item() == pytest.approx(
        10.0 * zero_one_loss(alpha).item(), rel=1e-5)
    for key, value in plain_weights.items():
        assert torch.equal(value, weights[key]), key


def test_fair_darts_uses_independent_sigmoid_weights():
    torch.manual_seed(0)
    model = build(fair_darts=dict())
    alpha = model.architecture.alpha
    torch.testing.assert_close(model.architecture.probabilities(), alpha.sigmoid())
    assert model.architecture.weighting == 'sigmoid'
    assert model.derive() == {edge: model.architecture.op_names[edge][j] for edge, j in zip(
        model.architecture.op_names, alpha.argmax(1).tolist())}


def test_random_smoothing_perturbs_the_weight_step_only():
    """The weight step equals one taken with the perturbed weights set by hand; the
    architecture step and validation see softmax(α)."""
    from mmsase.models.algorithms.countermeasures import (Countermeasures, SearchProgress,
                                                          smooth_weights)
    options = dict(max_epsilon=0.3, min_epsilon=0.3, seed=5)
    set_progress(epoch=0, iteration=11)
    torch.manual_seed(0)
    model = build(random_smoothing=options).train()
    reference = copy.deepcopy(model)
    reference.countermeasures = Countermeasures()
    noise = Countermeasures(random_smoothing=options).smoothing_noise(
        (6, 7), SearchProgress(0, 10, 11)).float()
    raw = search_data()['weights']  # the toy data add noise from the global RNG: once
    data = reference.data_preprocessor(raw, True)
    with reference.architecture.transformed(lambda w: smooth_weights(w, noise, True)):
        reference._update_weights(data, build_search_optim_wrapper(reference)['weights'])
    model._update_weights(model.data_preprocessor(raw, True),
                          build_search_optim_wrapper(model)['weights'],
                          SearchProgress(0, 10, 11))
    for (key, value), other in zip(model.classifier.state_dict().items(),
                                   reference.classifier.state_dict().values()):
        torch.testing.assert_close(value, other, msg=key)
    # outside the weight step the weights are the plain softmax
    torch.testing.assert_close(model.architecture.probabilities(),
                               model.architecture.alpha.softmax(-1))
    # and the noise changed the step: without it the weights differ
    torch.manual_seed(0)
    unperturbed = build().train()
    unperturbed._update_weights(unperturbed.data_preprocessor(raw, True),
                                build_search_optim_wrapper(unperturbed)['weights'])
    assert not torch.equal(unperturbed.classifier.state_dict()['backbone.conv1.weight'],
                           model.classifier.state_dict()['backbone.conv1.weight'])


def test_countermeasures_need_the_epoch():
    model = build(warmup_epochs=1)
    optim_wrapper = build_search_optim_wrapper(model)
    hub = MessageHub.get_instance('test_countermeasures_without_progress')
    assert hub is MessageHub.get_current_instance()  # a new hub knows no epoch
    with pytest.raises(RuntimeError, match=r"message hub has no \['epoch', 'max_epochs', "
                       r"'iter'\]"):
        model.train_step(search_data(), optim_wrapper)
