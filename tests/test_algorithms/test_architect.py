"""Exactness of the DARTS architecture step (mmsase.models.algorithms.architect).

Everything runs in double precision on a tiny conv net with BatchNorm (train mode, batch
statistics) and two softmax(alpha)-weighted mixed operations, so the loss is a smooth,
non-linear function of both the weights and alpha.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from mmsase.models.algorithms.architect import Architect

NUM_EDGES, NUM_OPS, NUM_CLASSES = 2, 3, 3


class TinyMixedNet(nn.Module):
    """conv-BN-tanh, then two mixed edges weighted by softmax(alpha), then a linear head.

    ``alpha`` is held outside the module's parameters, like ``bind_architecture`` does."""

    def __init__(self, alpha: nn.Parameter) -> None:
        super().__init__()
        self.__dict__['alpha'] = alpha
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.edges = nn.ModuleList(
            nn.ModuleList([
                nn.Conv2d(4, 4, 3, padding=1),
                nn.Conv2d(4, 4, 1),
                nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)),
            ]) for _ in range(NUM_EDGES))
        self.head = nn.Linear(4, NUM_CLASSES)

    def forward(self, x):
        x = torch.tanh(self.bn(self.stem(x)))
        for edge, alpha_edge in zip(self.edges, self.alpha):
            weights = F.softmax(alpha_edge, dim=0)
            x = sum(w * torch.tanh(op(x)) for w, op in zip(weights, edge))
        return self.head(x.mean((2, 3)))


def classification_loss(network, batch):
    inputs, labels = batch
    return F.cross_entropy(network(inputs), labels)


def make_batch(seed, size=8):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(size, 3, 6, 6, generator=generator, dtype=torch.double)
    labels = torch.randint(0, NUM_CLASSES, (size, ), generator=generator)
    return inputs, labels


def trained_network(make_optimizer):
    """A network after two real SGD steps of ``make_optimizer(network)`` (non-zero momentum
    buffers and weight decay)."""
    torch.manual_seed(0)
    alpha = nn.Parameter(torch.randn(NUM_EDGES, NUM_OPS, dtype=torch.double))
    network = TinyMixedNet(alpha).double().train()
    optimizer = make_optimizer(network)
    for step in range(2):
        optimizer.zero_grad()
        classification_loss(network, make_batch(100 + step)).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    alpha.grad = None
    return network, alpha, optimizer


@pytest.fixture
def setup():
    return trained_network(lambda network: torch.optim.SGD(
        network.parameters(), lr=0.3, momentum=0.9, weight_decay=5e-2))


def two_group_sgd(network):
    """SGD whose stem group has its own momentum and no weight decay (as paramwise_cfg
    makes)."""
    named = list(network.named_parameters())
    stem = [p for n, p in named if n.startswith(('stem.', 'bn.'))]
    rest = [p for n, p in named if not n.startswith(('stem.', 'bn.'))]
    return torch.optim.SGD([dict(params=stem, momentum=0.5, weight_decay=0.0),
                            dict(params=rest)], lr=0.3, momentum=0.9, weight_decay=5e-2)


def record_pass_weights(architect):
    """Makes each pass of ``architect`` append the ``{weight: substitute}`` it runs with
    (None: the network's own weights) to the returned list."""
    passes, loss = [], architect._loss

    def recording_loss(batch, weights=None):
        passes.append(weights)
        return loss(batch, weights)

    architect._loss = recording_loss
    return passes


def snapshot(network, optimizer):
    return (copy.deepcopy(network.state_dict()),
            copy.deepcopy(optimizer.state_dict()),
            [p.grad for p in network.parameters()])


def assert_bitwise_equal(before, after):
    (state, optim_state, grads), (state_after, optim_after, grads_after) = before, after
    assert state.keys() == state_after.keys()
    for key in state:
        assert torch.equal(state[key], state_after[key]), key
    assert optim_state['param_groups'] == optim_after['param_groups']
    assert optim_state['state'].keys() == optim_after['state'].keys()
    for index, param_state in optim_state['state'].items():
        for key, value in param_state.items():
            assert torch.equal(value, optim_after['state'][index][key])
    assert all(g is None for g in grads + grads_after)


def loss_with(network, batch, weights):
    """The loss at ``weights`` (name -> tensor) with train-mode BN on buffer copies."""
    buffers = {n: b.clone() for n, b in network.named_buffers()}
    return classification_loss(
        lambda x: functional_call(network, {**buffers, **weights}, (x, )),
        batch)


def virtual_step(network, optimizer, train_batch, create_graph=False):
    """w' = w - lr (dL_train/dw + momentum * buffer + weight_decay * w), name -> tensor."""
    group = optimizer.param_groups[0]
    lr, momentum, weight_decay = group['lr'], group['momentum'], group['weight_decay']
    weights = dict(network.named_parameters())
    train_loss = loss_with(network, train_batch, weights)
    grads = torch.autograd.grad(train_loss, list(weights.values()), create_graph=create_graph)
    return {
        name: w - lr * (g + momentum * optimizer.state[w]['momentum_buffer'] +
                        weight_decay * w)
        for (name, w), g in zip(weights.items(), grads)
    }


def exact_hypergradient(network, alpha, optimizer, train_batch, val_batch):
    """d L_val(w'(alpha), alpha) / d alpha, differentiating through the SGD step."""
    virtual = virtual_step(network, optimizer, train_batch, create_graph=True)
    val_loss = loss_with(network, val_batch, virtual)
    hypergradient, = torch.autograd.grad(val_loss, alpha)
    direct_gradient, = torch.autograd.grad(
        loss_with(network, val_batch,
                  {n: w.detach() for n, w in virtual.items()}), alpha)
    return hypergradient, direct_gradient


def relative_error(actual, expected):
    return ((actual - expected).norm() / expected.norm()).item()


def test_first_order_gradient_is_val_gradient(setup):
    network, alpha, optimizer = setup
    val_batch = make_batch(1)
    expected, = torch.autograd.grad(
        classification_loss(copy.deepcopy(network, {id(alpha): alpha}), val_batch),
        alpha)
    before = snapshot(network, optimizer)

    architect = Architect(network, alpha, classification_loss, unroll=False)
    gradient, val_loss = architect.alpha_gradient(val_batch)

    torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=1e-14)
    assert not val_loss.requires_grad
    assert_bitwise_equal(before, snapshot(network, optimizer))
    assert alpha.grad is None


def test_unrolled_gradient_matches_exact_hypergradient(setup):
    network, alpha, optimizer = setup
    train_batch, val_batch = make_batch(1), make_batch(2)
    assert all(
        optimizer.state[p]['momentum_buffer'].abs().sum() > 0
        for p in network.parameters())
    exact, direct = exact_hypergradient(network, alpha, optimizer, train_batch,
                                        val_batch)
    before = snapshot(network, optimizer)

    architect = Architect(network, alpha, classification_loss, unroll=True)
    gradient, _ = architect.alpha_gradient(val_batch, train_batch, optimizer)

    assert relative_error(gradient, exact) < 1e-3
    # The second-order correction itself must be accurate, not just small.
    correction, exact_correction = gradient - direct, exact - direct
    assert exact_correction.norm() > 0.05 * exact.norm()
    assert relative_error(correction, exact_correction) < 1e-3
    assert_bitwise_equal(before, snapshot(network, optimizer))
    assert alpha.grad is None


def test_unrolled_step_without_momentum_buffers():
    """Before the first real step the momentum buffer counts as zero."""
    torch.manual_seed(1)
    alpha = nn.Parameter(torch.randn(NUM_EDGES, NUM_OPS, dtype=torch.double))
    network = TinyMixedNet(alpha).double().train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.5, momentum=0.9)
    train_batch, val_batch = make_batch(3), make_batch(4)
    for p in network.parameters():  # the reference reads a zero buffer
        optimizer.state[p]['momentum_buffer'] = torch.zeros_like(p)
    exact, _ = exact_hypergradient(network, alpha, optimizer, train_batch, val_batch)
    optimizer.state.clear()

    architect = Architect(network, alpha, classification_loss, unroll=True)
    gradient, _ = architect.alpha_gradient(val_batch, train_batch, optimizer)

    assert relative_error(gradient, exact) < 1e-3
    assert len(optimizer.state) == 0


def test_pass_counts(setup):
    """First order: 1 forward; unrolled: 4 (virtual step, w', w+, w-)."""
    network, alpha, optimizer = setup
    forwards = []
    network.register_forward_hook(lambda *_: forwards.append(1))
    batch = make_batch(5)
    Architect(network, alpha, classification_loss).alpha_gradient(batch)
    assert len(forwards) == 1
    Architect(network, alpha, classification_loss, unroll=True).alpha_gradient(
        batch, batch, optimizer)
    assert len(forwards) == 5


def test_unrolled_step_rejects_unsupported_optimizers(setup):
    network, alpha, _ = setup
    architect = Architect(network, alpha, classification_loss, unroll=True)
    batch = make_batch(6)
    nesterov = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    with pytest.raises(ValueError, match='Nesterov'):
        architect.alpha_gradient(batch, batch, nesterov)
    maximize = torch.optim.SGD(network.parameters(), lr=0.1, maximize=True)
    with pytest.raises(ValueError, match='maximize=True'):
        architect.alpha_gradient(batch, batch, maximize)
    with pytest.raises(ValueError, match='optimizer is Adam.*unroll=False'):
        architect.alpha_gradient(batch, batch, torch.optim.Adam(network.parameters()))
    params = list(network.parameters())
    two_lrs = torch.optim.SGD([{'params': params[:2], 'lr': 0.1},
                               {'params': params[2:], 'lr': 0.2}])
    with pytest.raises(ValueError, match='one learning rate'):
        architect.alpha_gradient(batch, batch, two_lrs)
    with pytest.raises(ValueError, match='alpha'):
        architect.alpha_gradient(batch, batch,
                                 torch.optim.SGD(params + [alpha], lr=0.1))
    with pytest.raises(ValueError, match='train_batch'):
        architect.alpha_gradient(batch)


def test_frozen_weights_are_constants_of_the_virtual_step(setup):
    """A weight with requires_grad=False that the optimizer holds (mmengine puts frozen
    parameters in it too) counts as one the optimizer does not update."""
    network, alpha, optimizer = setup
    train_batch, val_batch = make_batch(7), make_batch(8)
    stem = list(network.stem.parameters())
    architect = Architect(network, alpha, classification_loss, unroll=True)
    others = torch.optim.SGD([p for p in network.parameters() if all(p is not q for q in stem)],
                             lr=0.3, momentum=0.9, weight_decay=5e-2)
    for p in others.param_groups[0]['params']:
        others.state[p] = optimizer.state[p]
    expected, _ = architect.alpha_gradient(val_batch, train_batch, others)
    for p in stem:
        p.requires_grad_(False)
    gradient, _ = architect.alpha_gradient(val_batch, train_batch, optimizer)
    torch.testing.assert_close(gradient, expected, rtol=0, atol=0)


@pytest.mark.parametrize('scale', [0.01, 0.05])
def test_finite_difference_points_sit_at_scale_along_the_val_gradient(setup, scale):
    """w+- = w +- eps v with eps = scale / ||v||, v = dL_val/dw' (w'): both points lie at
    distance ``scale`` from w, on either side, along v. (The hypergradient test alone cannot
    tell eps = 0.01 / ||v|| from an unscaled eps = 0.01: both are accurate differences.)"""
    network, alpha, optimizer = setup
    train_batch, val_batch = make_batch(9), make_batch(10)
    virtual = {n: w.detach().requires_grad_()
               for n, w in virtual_step(network, optimizer, train_batch).items()}
    v = torch.autograd.grad(loss_with(network, val_batch, virtual), list(virtual.values()))
    v = torch.cat([g.flatten() for g in v])
    w = torch.cat([p.detach().flatten() for p in network.parameters()])

    architect = Architect(network, alpha, classification_loss, unroll=True,
                          finite_difference_scale=scale)
    passes = record_pass_weights(architect)
    architect.alpha_gradient(val_batch, train_batch, optimizer)

    w_plus, w_minus = (torch.cat([weights[p].detach().flatten() for p in network.parameters()])
                       for weights in passes[2:])
    torch.testing.assert_close(w_plus - w, scale * v / v.norm(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(w_minus - w, -scale * v / v.norm(), rtol=1e-9, atol=1e-12)


def test_virtual_step_is_the_next_sgd_iterate_with_per_group_settings():
    """w' equals the weights after a real torch SGD step on the same batch, also when the
    parameter groups differ in momentum and weight decay (e.g. paramwise_cfg)."""
    network, alpha, optimizer = trained_network(two_group_sgd)
    train_batch, val_batch = make_batch(11), make_batch(12)

    stepped = copy.deepcopy(network)
    stepped_optimizer = two_group_sgd(stepped)
    # a copy: load_state_dict keeps the very momentum buffers, which step() then updates
    stepped_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    classification_loss(stepped, train_batch).backward()
    stepped_optimizer.step()

    architect = Architect(network, alpha, classification_loss, unroll=True)
    passes = record_pass_weights(architect)
    architect.alpha_gradient(val_batch, train_batch, optimizer)
    virtual = passes[1]
    for (name, p), q in zip(network.named_parameters(), stepped.parameters()):
        torch.testing.assert_close(virtual[p], q, rtol=1e-12, atol=1e-14, msg=name)
