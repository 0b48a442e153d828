"""EAN's controller search step: policy, REINFORCE against a hand-computed step, baseline
order, RND bonus, clipped replay, exact resume."""
import io
import math

import pytest
import torch

from mmsase.models.ean.controller import ConnectionController
from mmsase.models.ean.reinforce import (EANReinforce, RNDBonus, ReplayBuffer, ema_baseline,
                                         replay_loss)


def toy_reward(codes):
    """Reward = 10 · plugged blocks of the first half − 3 · plugged blocks overall."""
    half = codes.shape[1] // 2
    return 10.0 * codes[:, :half].sum(1).double() - 3.0 * codes.sum(1).double()


def test_policy_sampling_and_log_probs():
    controller = ConnectionController(4, temperature=5.0)
    assert controller.probabilities().tolist() == [0.5] * 4
    assert controller.most_likely() == (1, 1, 1, 1)  # ties plug
    assert math.isclose(float(controller.entropy().detach()), 4 * math.log(2), rel_tol=1e-6)
    with torch.no_grad():
        controller.weight.copy_(torch.tensor([[0., 5.], [5., 0.], [0., 0.], [0., -10.]]))
    expected = torch.sigmoid(torch.tensor([5., -5., 0., -10.]) / 5)
    assert torch.allclose(controller.probabilities(), expected)
    assert controller.most_likely() == (1, 0, 1, 0)
    codes, log_probs = controller.sample(20000, torch.Generator().manual_seed(0))
    assert codes.shape == log_probs.shape == (20000, 4)
    assert set(codes.unique().tolist()) <= {0, 1}
    assert torch.allclose(codes.double().mean(0), expected.double(), atol=0.015)
    chosen = torch.where(codes == 1, expected, 1 - expected).log()
    assert torch.allclose(log_probs, chosen, atol=1e-6)
    again, _ = controller.sample(20000, torch.Generator().manual_seed(0))
    assert torch.equal(codes, again)
    with pytest.raises(ValueError, match=r'shape \(n, 4\)'):
        controller.log_prob(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match='only 0'):
        controller.log_prob(torch.full((1, 4), 2))


def test_mlp_policy_is_the_authors_shape():
    controller = ConnectionController(16, mlp=(20, 50), seed=3)
    assert controller.logits().shape == (16, 2)
    assert [tuple(p.shape) for p in controller.parameters()] == [(50, 20), (50, ), (32, 50),
                                                                 (32, )]
    same = ConnectionController(16, mlp=(20, 50), seed=3)
    assert torch.equal(controller.logits(), same.logits())


def hand_gradient(codes, advantages, plug_prob, temperature):
    """d/dz of Σ_b mean_i(−log π_b(c_ib) · adv_i), logits z/T, π = softmax per block."""
    n, blocks = codes.shape
    grad = [[0.0, 0.0] for _ in range(blocks)]
    for b in range(blocks):
        probs = (1 - plug_prob[b], plug_prob[b])
        for a in range(2):
            for i in range(n):
                indicator = 1.0 if int(codes[i, b]) == a else 0.0
                grad[b][a] += -advantages[i] * (indicator - probs[a]) / temperature / n
    return torch.tensor(grad, dtype=torch.float64)


@pytest.mark.parametrize('optimizer', ['SGD', 'Adam'])
def test_step_matches_hand_computed_reinforce(optimizer):
    lr, temperature = 0.3, 5.0
    controller = ConnectionController(6, temperature=temperature)
    with torch.no_grad():
        controller.weight.copy_(torch.tensor([[0., 1.], [2., 0.], [0., 0.], [1., 3.], [0., -2.],
                                              [0.5, 0.]]))
    search = EANReinforce(controller, codes_per_step=3, lr=lr, optimizer=optimizer, rnd=False,
                          replay=False, seed=1)
    before = controller.weight.detach().double().clone()
    plug_prob = controller.probabilities().detach().double().tolist()
    # the codes the step will draw: the same generator state, the same draw
    uniform = torch.rand(3, 6, generator=torch.Generator().manual_seed(1))
    codes = (uniform < torch.tensor(plug_prob).float()).long()

    record = search.step(toy_reward)

    assert torch.equal(record['codes'], codes)
    rewards = toy_reward(codes).tolist()
    baseline = sum(rewards) / 3  # first step: the mean reward
    advantages = [r - baseline for r in rewards]
    assert record['baseline'] == pytest.approx(baseline)
    assert record['advantages'].tolist() == pytest.approx(advantages)
    grad = hand_gradient(codes, advantages, plug_prob, temperature)
    if optimizer == 'SGD':
        expected = before - lr * grad
    else:  # Adam's first step: m̂ = g, v̂ = g², so the step is lr · g / (|g| + eps)
        expected = before - lr * grad / (grad.abs() + 1e-8)
    assert torch.allclose(controller.weight.detach().double(), expected, atol=1e-5)
    assert not torch.equal(expected, before)


def test_baseline_is_updated_before_the_advantage():
    assert ema_baseline(None, torch.tensor([1.0, 2.0, 6.0]), 0.95) == pytest.approx(3.0)
    assert ema_baseline(3.0, torch.tensor([13.0]), 0.95) == pytest.approx(3.5)

    sequence = iter([torch.tensor([1.0, 2.0, 6.0]), torch.tensor([13.0, 13.0, 13.0])])
    search = EANReinforce(ConnectionController(4), optimizer='SGD', rnd=False, replay=False,
                          baseline_decay=0.95)
    first = search.step(lambda codes: next(sequence))
    assert first['baseline'] == pytest.approx(3.0)
    assert first['advantages'].tolist() == pytest.approx([-2.0, -1.0, 3.0])
    second = search.step(lambda codes: next(sequence))
    assert second['baseline'] == pytest.approx(0.95 * 3.0 + 0.05 * 13.0)
    # the advantage uses the baseline that already saw this step's rewards
    assert second['advantages'].tolist() == pytest.approx([13.0 - 3.5] * 3)


def set_constant_output(net, value):
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        net[-1].bias.fill_(value)


def test_rnd_bonus_on_given_nets():
    rnd = RNDBonus(5)
    assert [m.out_features for m in rnd.fixed if isinstance(m, torch.nn.Linear)] == [32, 32, 20]
    assert [m.out_features for m in rnd.learned if isinstance(m, torch.nn.Linear)] == [32, 20]
    assert not any(p.requires_grad for p in rnd.fixed.parameters())
    set_constant_output(rnd.fixed, 1.5)
    set_constant_output(rnd.learned, 0.5)
    codes = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    # 3 codes × 20 outputs, each (1.5 − 0.5)² = 1
    assert float(rnd(codes).detach()) == pytest.approx(60.0)

    # the bonus is one scalar added to every reward; the learned net then gets closer
    search = EANReinforce(ConnectionController(5), optimizer='SGD', lr=0.01, replay=False)
    search.rnd.load_state_dict(rnd.state_dict())
    record = search.step(lambda codes: torch.tensor([1.0, 2.0, 3.0]))
    assert record['bonus'] == pytest.approx(60.0)
    assert record['baseline'] == pytest.approx(62.0)
    assert record['advantages'].tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert float(search.rnd(codes).detach()) < 60.0


def test_replay_objective_on_given_numbers():
    log_pi = torch.tensor([[math.log(0.5), math.log(0.25)],
                           [math.log(0.8), math.log(0.4)]], requires_grad=True)
    ratio = torch.tensor([[1.5, 1.0], [0.5, 1.05]])
    adv = torch.tensor([2.0, -1.0])
    s1 = (1.5 * math.log(0.5) * 2 + 1.0 * math.log(0.25) * 2
          + 0.5 * math.log(0.8) * -1 + 1.05 * math.log(0.4) * -1) / 2
    s2 = (1.1 * math.log(0.5) * 2 + 1.0 * math.log(0.25) * 2
          + 0.9 * math.log(0.8) * -1 + 1.05 * math.log(0.4) * -1) / 2
    loss = replay_loss(log_pi, ratio, adv, clip=0.1, weight=0.1)
    assert float(loss.detach()) == pytest.approx(-0.1 * min(s1, s2), rel=1e-6)
    loss.backward()
    # gradient through log π only, with the ratios of the smaller surrogate
    chosen = ratio if s1 < s2 else ratio.clamp(0.9, 1.1)
    assert torch.allclose(log_pi.grad, -0.1 * chosen * adv.unsqueeze(1) / 2)


def test_replay_update_runs_from_replay_start_with_rewards_without_bonus():
    search = EANReinforce(ConnectionController(4), replay_start=2, replay_buffer=3, seed=0)
    records = [search.step(toy_reward) for _ in range(5)]
    assert [r['replay_loss'] is None for r in records] == [True, True, False, False, False]
    assert len(search.buffer) == 3
    assert [e['step'] for e in search.buffer.entries] == [2, 3, 4]
    for entry, record in zip(search.buffer.entries, records[2:]):
        assert torch.equal(entry['rewards'], record['rewards'])  # no bonus in the buffer
        assert torch.equal(entry['codes'], record['codes'])
    with pytest.raises(ValueError, match='max_size'):
        ReplayBuffer(0)


def make_search(seed=0):
    return EANReinforce(ConnectionController(6, mlp=(20, 50), seed=seed), replay_start=1,
                        replay_buffer=2, seed=seed)


def test_resume_is_exact():
    reference = make_search()
    expected_codes = [reference.step(toy_reward)['codes'] for _ in range(4)]

    first = make_search()
    codes = [first.step(toy_reward)['codes'] for _ in range(2)]
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    saved.seek(0)
    resumed = make_search(seed=5)  # everything random comes from the saved state
    resumed.load_state_dict(torch.load(saved, weights_only=True))
    codes += [resumed.step(toy_reward)['codes'] for _ in range(2)]

    assert all(torch.equal(a, b) for a, b in zip(codes, expected_codes))
    for a, b in zip(resumed.controller.parameters(), reference.controller.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(resumed.rnd.parameters(), reference.rnd.parameters()):
        assert torch.equal(a, b)
    assert resumed.baseline == reference.baseline
    assert resumed.num_steps == 4

    plain = EANReinforce(ConnectionController(6, mlp=(20, 50)), rnd=False)
    with pytest.raises(ValueError, match='rnd on'):
        plain.load_state_dict(first.state_dict())
