"""TensorSubstitution (mmsase.models.algorithms.substitution) against torch.func.functional_call."""
import pytest
import torch
from torch import nn
from torch.func import functional_call

from mmsase.models.algorithms.substitution import TensorSubstitution


def make_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.LazyLinear(2))
    net(torch.randn(2, 3, 6, 6))  # materialise the lazy layer
    return net


def test_matches_functional_call_and_restores():
    net = make_net().train()
    x = torch.randn(5, 3, 6, 6)
    conv, bn = net[0], net[1]
    originals = {name: t for name, t in [*net.named_parameters(), *net.named_buffers()]}
    new_weight = torch.randn_like(conv.weight, requires_grad=True)
    buffers = {b: b.clone() for b in net.buffers()}
    running_mean_before = bn.running_mean.clone()
    batches_before = int(bn.num_batches_tracked)

    substitution = TensorSubstitution(net)
    with substitution({conv.weight: new_weight, **buffers}):
        assert net[0].weight is new_weight
        out = net(x)
    expected = functional_call(
        net, {'0.weight': new_weight, **{n: b.clone() for n, b in net.named_buffers()}}, (x, ))
    torch.testing.assert_close(out, expected)

    # gradients reach the substitute, not the network's own weight
    (grad, ) = torch.autograd.grad(out.sum(), [new_weight])
    (expected_grad, ) = torch.autograd.grad(expected.sum(), [new_weight])
    torch.testing.assert_close(grad, expected_grad)
    # every registration is back, and the BN statistics went into the copies only
    for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
        assert tensor is originals[name], name
    torch.testing.assert_close(bn.running_mean, running_mean_before)
    assert not torch.equal(buffers[bn.running_mean], running_mean_before)
    assert int(bn.num_batches_tracked) == batches_before


def test_tied_weight_is_substituted_everywhere():
    a, b = nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False)
    b.weight = a.weight
    net = nn.Sequential(a, b)
    substitute = torch.eye(3)
    with TensorSubstitution(net)({a.weight: substitute}):
        assert a.weight is substitute and b.weight is substitute
        x = torch.randn(2, 3)
        torch.testing.assert_close(net(x), x)
    assert a.weight is b.weight and a.weight is not substitute


def test_restores_after_an_exception():
    net = make_net()
    weight = net[0].weight
    substitution = TensorSubstitution(net)
    with pytest.raises(RuntimeError, match='inside'):
        with substitution({weight: torch.zeros_like(weight)}):
            raise RuntimeError('inside')
    assert net[0].weight is weight


def test_follows_replaced_parameters_and_rejects_foreign_tensors():
    net = make_net()
    substitution = TensorSubstitution(net)
    net[0].weight = nn.Parameter(torch.randn_like(net[0].weight))  # after construction
    substitute = torch.zeros_like(net[0].weight)
    with substitution({net[0].weight: substitute}):
        assert net[0].weight is substitute
    with pytest.raises(KeyError, match=r'not a parameter or buffer.*shape \(7,\)'):
        with substitution({torch.zeros(7): torch.ones(7)}):
            pass
    assert isinstance(net[0].weight, nn.Parameter)



def test_follows_ties_made_after_construction():
    a, b = nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False)
    net = nn.Sequential(a, b)
    substitution = TensorSubstitution(net)
    b.weight = a.weight  # a's own registration is untouched
    with substitution({a.weight: torch.eye(3)}):
        assert a.weight is b.weight and torch.equal(b.weight, torch.eye(3))
    c = nn.Linear(3, 3, bias=False)
    c.weight = a.weight  # tied before c joins the network
    net.append(c)
    with substitution({a.weight: torch.eye(3)}):
        assert c.weight is a.weight and torch.equal(c.weight, torch.eye(3))
    assert isinstance(c.weight, nn.Parameter) and c.weight is a.weight is b.weight


def test_a_supernet_pass_leaves_the_index_current():
    """Nothing in a pass registers tensors (else every substitution would look up anew)."""
    from mmsase.models.algorithms.substitution import _Registrations
    from mmsase.models.sase.supernet import SASESupernet
    torch.manual_seed(0)
    net = SASESupernet(16).train()
    substitution = TensorSubstitution(net)
    count = _Registrations.count
    with substitution({b: b.clone() for b in net.buffers()}):
        net(torch.randn(2, 16, 8, 8)).sum().backward()
    assert _Registrations.count == count


def test_buffers_and_holds_follow_the_network():
    net = make_net()
    substitution = TensorSubstitution(net)
    assert [id(b) for b in substitution.buffers()] == [id(b) for b in net.buffers()]
    bn = net[1]
    bn.running_mean = torch.zeros(4)  # setattr: a registration
    bn._buffers['running_var'] = torch.ones(4)  # written directly, no registration
    assert [id(b) for b in substitution.buffers()] == [id(b) for b in net.buffers()]
    net.append(nn.BatchNorm1d(2))
    net[-1].running_mean = bn.running_mean  # tied: listed once, like net.buffers()
    assert [id(b) for b in substitution.buffers()] == [id(b) for b in net.buffers()]
    assert all(substitution.holds(t) for t in [*net.parameters(), *net.buffers()])
    assert not substitution.holds(torch.zeros(4))
    old_weight = net[0].weight
    net[0]._parameters['weight'] = nn.Parameter(old_weight.detach().clone())  # directly
    assert substitution.holds(net[0].weight) and not substitution.holds(old_weight)
