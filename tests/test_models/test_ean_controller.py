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


# ---------------------------------------------------------------------------------------------
# The authors' policy (search_imagent/EAN_search.py, ``Controller``): Linear(20→50) → ReLU →
# Linear(50→2·blocks) on a constant zero input; block b reads outputs 2b (action 0) and 2b + 1
# (action 1 = plug), ``total_logits[:, 2*block_idx:2*block_idx+2]``, divided by T = 5.
# ---------------------------------------------------------------------------------------------
def test_mlp_policy_reads_a_zero_input_with_the_authors_logit_layout():
    controller = ConnectionController(16, mlp=(20, 50), seed=7)
    first, second = controller.mlp[0], controller.mlp[2]
    with torch.no_grad():  # b2 of block b: action 0 ← 0.3·b, plug ← 1 − 0.2·b
        second.bias.copy_(torch.stack([0.3 * torch.arange(16.), 1 - 0.2 * torch.arange(16.)],
                                      1).reshape(32))
    w2, b2, b1 = (t.detach().double() for t in (second.weight, second.bias, first.bias))
    out = w2 @ b1.clamp(min=0) + b2  # W2·δ(W1·0 + b1) + b2
    expected = torch.stack([out[0::2], out[1::2]], 1) / 5.0
    assert torch.allclose(controller.logits().detach().double(), expected, atol=1e-6)
    plug = 1 / (1 + torch.exp(-(out[1::2] - out[0::2]) / 5.0))
    assert torch.allclose(controller.probabilities().detach().double(), plug, atol=1e-6)
    # a layout of 16 "no" logits then 16 "plug" logits would pair other outputs
    halves = 1 / (1 + torch.exp(-(out[16:] - out[:16]) / 5.0))
    assert not torch.allclose(plug, halves, atol=1e-3)
    # the input is zero: the first layer's weights never matter, its bias does
    with torch.no_grad():
        first.weight.normal_()
    assert torch.allclose(controller.logits().detach().double(), expected, atol=1e-6)
    with torch.no_grad():
        first.bias.add_(1.0)
    assert not torch.allclose(controller.logits().detach().double(), expected, atol=1e-3)
    # gradients reach b1, W2, b2 only (W1 multiplies zeros)
    controller.log_prob(torch.ones(1, 16, dtype=torch.long)).sum().backward()
    assert float(first.weight.grad.abs().max()) == 0
    assert float(second.bias.grad.abs().max()) > 0


def hand_rnd_bonus(rnd, codes):
    """Σ over codes and outputs of (fixed(x) − learned(x))², the nets written out."""
    def linear(x, layer):
        return x @ layer.weight.detach().double().t() + layer.bias.detach().double()

    x = torch.as_tensor(codes).double()
    f = rnd.fixed
    fixed = linear(linear(linear(x, f[0]).clamp(min=0), f[2]).clamp(min=0), f[4])
    learned = linear(linear(x, rnd.learned[0]).clamp(min=0), rnd.learned[2])
    return float(((fixed - learned)**2).sum())


def test_rnd_bonus_depends_on_the_codes():
    rnd = RNDBonus(16, seed=0)
    assert [m.out_features for m in rnd.fixed if isinstance(m, torch.nn.Linear)] == [32, 32, 64]
    assert [m.out_features for m in rnd.learned if isinstance(m, torch.nn.Linear)] == [32, 64]
    codes = torch.tensor([[1] * 16, [0] * 16, [1, 0] * 8, [0, 1] * 8, [1] * 8 + [0] * 8,
                          [1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1]])
    singles = [float(rnd(code[None]).detach()) for code in codes]
    for code, value in zip(codes, singles):
        assert value == pytest.approx(hand_rnd_bonus(rnd, code[None]), rel=1e-5)
    assert len({round(v, 4) for v in singles}) == len(singles)  # every code its own bonus
    batch = codes[[2, 5, 0]]  # one step: the bonus of the 3 codes is one sum
    assert float(rnd(batch).detach()) == pytest.approx(sum(singles[i] for i in (2, 5, 0)),
                                                       rel=1e-5)
    assert float(rnd(batch).detach()) == pytest.approx(hand_rnd_bonus(rnd, batch), rel=1e-5)


def test_defaults_are_the_authors_values():
    """EAN_search.py: Adam lr 5e-2 (controller and RND learner), T = 5, EMA decay 0.95,
    1 + validate_size 2 = 3 codes per step, replay from step 10 over a buffer of 30 steps,
    clip 0.1, weight 0.1."""
    controller = ConnectionController(16, mlp=(20, 50))
    assert controller.temperature == 5.0
    search = EANReinforce(controller)
    assert type(search.optimizer) is torch.optim.Adam
    assert search.optimizer.defaults['lr'] == 5e-2
    assert search.optimizer.defaults['betas'] == (0.9, 0.999)  # PyTorch's, as theirs
    assert search.optimizer.defaults['weight_decay'] == 0
    assert [id(p) for g in search.optimizer.param_groups for p in g['params']] == \
        [id(p) for p in controller.parameters()]
    assert type(search.rnd_optimizer) is torch.optim.Adam
    assert search.rnd_optimizer.defaults['lr'] == 5e-2
    assert [id(p) for g in search.rnd_optimizer.param_groups for p in g['params']] == \
        [id(p) for p in search.rnd.learned.parameters()]
    assert search.codes_per_step == 3 and search.baseline_decay == 0.95
    assert search.replay_start == 10 and search.buffer.max_size == 30
    assert (search.replay_clip, search.replay_weight) == (0.1, 0.1)

    # in use: the first replay at 0-based step 10 (the authors' `if step >= 10`), a buffer of
    # the last 30 steps, a constant learning rate, 3 codes a step
    records = [search.step(toy_reward) for _ in range(32)]
    assert [r['replay_loss'] is None for r in records[:11]] == [True] * 10 + [False]
    assert all(r['codes'].shape == (3, 16) for r in records)
    assert [e['step'] for e in search.buffer.entries] == list(range(2, 32))
    assert search.optimizer.param_groups[0]['lr'] == 5e-2


# ---------------------------------------------------------------------------------------------
# REINFORCE + the clipped replay, by hand: free logits w (blocks, 2), π_b = softmax(w_b / T).
# ---------------------------------------------------------------------------------------------
def _plug(w, temperature):
    return torch.sigmoid((w[:, 1] - w[:, 0]) / temperature)


def _log_pi(w, codes, temperature):
    plug = _plug(w, temperature)
    return torch.where(codes == 1, plug.log(), (1 - plug).log())  # (n, blocks)


def _dlog_pi(w, codes, temperature):
    """(n, blocks, 2): d log π_b(c_ib) / d w_{b,a} = (1[c_ib = a] − π_b(a)) / T."""
    plug = _plug(w, temperature)
    probs = torch.stack([1 - plug, plug], 1)  # (blocks, 2)
    onehot = torch.stack([codes == 0, codes == 1], 2).double()
    return (onehot - probs) / temperature


class HandOptimizer:
    """SGD, or Adam with PyTorch's defaults (β 0.9 / 0.999, eps 1e-8, bias-corrected)."""

    def __init__(self, kind, lr):
        self.kind, self.lr, self.t, self.m, self.v = kind, lr, 0, 0.0, 0.0

    def step(self, w, g):
        if self.kind == 'SGD':
            return w - self.lr * g
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        m_hat, v_hat = self.m / (1 - 0.9**self.t), self.v / (1 - 0.999**self.t)
        return w - self.lr * m_hat / (v_hat.sqrt() + 1e-8)


# step 1's low rewards pull the baseline under every reward of step 0, so replaying step 0
# has positive advantages on codes that step 1 made less likely (ratios < 0.9): the clip acts
REPLAY_REWARDS = (torch.tensor([1.0, -1.0, 0.5]), torch.tensor([-40.0, -44.0, -36.0]))


def hand_search(w0, seed, kind, lr, temperature, clip=True, replay_index=None):
    """Two steps (replay from step 1, buffer 2) written out; returns the weights after each
    update, the replayed index, the replay's two surrogates and its loss, the ratios."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = HandOptimizer(kind, lr)
    w, baseline, entries = w0.clone(), None, []
    for step, rewards in enumerate(REPLAY_REWARDS):
        uniform = torch.rand(3, w.shape[0], generator=generator, dtype=torch.float32)
        codes = (uniform.double() < _plug(w, temperature)).long()
        entries.append((codes, rewards.double(), _log_pi(w, codes, temperature).exp()))
        mean = float(rewards.double().mean())
        baseline = mean if baseline is None else 0.95 * baseline + 0.05 * mean
        adv = rewards.double() - baseline
        grad = (-adv[:, None, None] * _dlog_pi(w, codes, temperature)).mean(0)
        w = optimizer.step(w, grad)
    drawn = int(torch.randint(2, (1, ), generator=generator))
    index = drawn if replay_index is None else replay_index
    codes, rewards, old = entries[index]
    adv = rewards - baseline
    log_pi = _log_pi(w, codes, temperature)
    ratio = log_pi.exp() / old
    clipped = ratio.clamp(0.9, 1.1)
    surr1 = float((ratio * log_pi * adv[:, None]).sum()) / 3
    surr2 = float((clipped * log_pi * adv[:, None]).sum()) / 3
    chosen = clipped if clip and surr2 < surr1 else ratio
    loss = -0.1 * (min(surr1, surr2) if clip else surr1)
    grad = (-0.1 * chosen[:, :, None] * adv[:, None, None]
            * _dlog_pi(w, codes, temperature)).sum(0) / 3
    return dict(before_replay=w, after=optimizer.step(w, grad), drawn=drawn, surr1=surr1,
                surr2=surr2, loss=loss, ratio=ratio)


W0 = torch.tensor([[0.0, 0.4], [0.5, 0.0], [0.0, 0.0], [-0.3, 0.2]], dtype=torch.float64)


@pytest.mark.parametrize('kind', ['SGD', 'Adam'])
def test_reinforce_then_clipped_replay_by_hand(kind):
    lr, temperature, seed = 1.0, 2.0, 3
    expected = hand_search(W0, seed, kind, lr, temperature)
    # the numbers make the test bite: the replayed entry is the older one (not the newest),
    # some ratios leave [0.9, 1.1] and the clipped surrogate is the smaller one
    assert expected['drawn'] == 0
    assert ((expected['ratio'] < 0.9) | (expected['ratio'] > 1.1)).any()
    assert expected['surr2'] < expected['surr1'] - 1e-3
    variants = [hand_search(W0, seed, kind, lr, temperature, clip=False)['after'],
                hand_search(W0, seed, kind, lr, temperature, replay_index=1)['after'],
                expected['before_replay']]  # no clip, the newest entry, no replay step
    for other in variants:
        assert (other - expected['after']).abs().max() > 1e-3

    controller = ConnectionController(4, temperature=temperature)
    with torch.no_grad():
        controller.weight.copy_(W0)
    search = EANReinforce(controller, codes_per_step=3, lr=lr, optimizer=kind, rnd=False,
                          replay_start=1, replay_buffer=2, seed=seed)
    rewards = iter(REPLAY_REWARDS)
    records = [search.step(lambda codes: next(rewards)) for _ in range(2)]
    assert records[0]['replay_loss'] is None
    assert records[1]['replay_loss'] == pytest.approx(expected['loss'], rel=1e-5)
    assert torch.allclose(controller.weight.detach().double(), expected['after'], atol=1e-5)


def test_the_replayed_entry_is_the_generators_draw():
    """Over a longer run, each replay's entry is the one ``torch.randint(len(buffer))`` draws
    from the search's generator right after that step's codes."""
    generator = torch.Generator().manual_seed(11)
    search = EANReinforce(ConnectionController(5), codes_per_step=3, optimizer='SGD', lr=0.0,
                          rnd=False, replay_start=2, replay_buffer=4, seed=11)
    replayed, drawn = [], []
    sample = search.buffer.sample

    def spy(gen=None):
        entry = sample(gen)
        replayed.append(entry['step'])
        return entry

    search.buffer.sample = spy
    for step in range(9):
        codes = search.step(toy_reward)['codes']
        # lr 0: the policy stays at 1/2, so the codes are the draw's uniform < 1/2
        assert torch.equal(codes, (torch.rand(3, 5, generator=generator) < 0.5).long())
        if step >= 2:
            kept = list(range(max(0, step - 3), step + 1))
            drawn.append(kept[int(torch.randint(len(kept), (1, ), generator=generator))])
    assert replayed == drawn
    assert len(set(replayed)) > 2 and any(r != s for r, s in zip(replayed, range(2, 9)))
