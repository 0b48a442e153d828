"""One step of EAN's controller search: REINFORCE with an EMA baseline, as the authors run it.

Authors' code: gbup-group/EAN-efficient-attention-network, ``search_imagent/EAN_search.py``
(``train_controller``). Per step it samples 1 + ``validate_size`` = 3 codes, scores each with the
frozen supernet (``top-1 % + 2·fraction unplugged − 54``, computed by the caller here) and then

1. stores ``(codes, rewards, π_old(codes), step)`` in a replay buffer of the last 30 steps;
2. adds a random-network-distillation (RND) novelty bonus, one scalar for all 3 rewards:
   ``Σ (fixed(codes) − learned(codes))²`` over the 3 × 4·blocks outputs; the learned net is
   trained (Adam, lr 5e-2) to minimise that sum, so codes seen often earn less bonus;
3. updates the baseline **before** the advantage: first value = mean reward, then
   ``b ← 0.95·b + 0.05·mean reward``; ``adv = R − b``;
4. steps the controller (Adam lr 5e-2, no clipping) on ``Σ_blocks mean_codes(−log π · adv)``;
5. from step 10 (0-based) replays one random buffer entry, PPO-style: with
   ``ratio = π_new / π_old`` (detached) and the entry's rewards (no RND bonus) against the
   current baseline, ``surr = Σ(ratio · log π_new · adv) / codes`` and the same with the ratio
   clipped to ``[0.9, 1.1]``; loss ``−0.1 · min(surr1, surr2)`` (the min of the two sums, as
   the authors, not PPO's element-wise min), one more controller step.

The RND bonus and the replay are options (on in the authors' configuration). Randomness comes
from one ``torch.Generator`` (codes, replay draws), saved with the rest by :meth:`state_dict`, so
a resumed search draws the same codes as an uninterrupted one.
"""
import copy
from typing import Callable, List, Optional

import torch
import torch.nn as nn

from .controller import ConnectionController

__all__ = ['EANReinforce', 'RNDBonus', 'ReplayBuffer', 'ema_baseline', 'reinforce_loss',
           'replay_loss']


def ema_baseline(baseline: Optional[float], rewards: torch.Tensor, decay: float) -> float:
    """The baseline after seeing ``rewards``: their mean first, then an EMA of step means."""
    mean = float(torch.as_tensor(rewards, dtype=torch.float64).mean())
    return mean if baseline is None else decay * baseline + (1 - decay) * mean


def reinforce_loss(log_probs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """``Σ_blocks mean_codes(−log π · adv)``; ``log_probs`` is ``(codes, blocks)``."""
    return (-log_probs * advantages.to(log_probs).unsqueeze(1)).mean(0).sum()


def replay_loss(log_probs: torch.Tensor, ratio: torch.Tensor, advantages: torch.Tensor,
                clip: float = 0.1, weight: float = 0.1) -> torch.Tensor:
    """The authors' clipped replay objective, ``−weight · min(surr1, surr2)`` with
    ``surr = Σ(ratio · log π · adv) / codes`` (``ratio`` clipped to ``1 ± clip`` in surr2)."""
    adv = advantages.to(log_probs).unsqueeze(1)
    ratio = ratio.detach().to(log_probs)
    surr1 = (ratio * log_probs * adv).sum() / log_probs.shape[0]
    surr2 = (ratio.clamp(1 - clip, 1 + clip) * log_probs * adv).sum() / log_probs.shape[0]
    return -weight * torch.min(surr1, surr2)


class RNDBonus(nn.Module):
    """Random network distillation over codes (authors' ``RND_fix`` / ``RND_learn``).

    fixed: ``blocks → 32 → ReLU → 32 → ReLU → 4·blocks`` (frozen); learned:
    ``blocks → 32 → ReLU → 4·blocks``. ``forward(codes)`` is the bonus
    ``Σ (fixed − learned)²`` over all codes and outputs, a scalar that carries the learned
    net's gradient. Both nets are initialised from ``seed`` (PyTorch's default init).
    """

    def __init__(self, num_blocks: int, hidden: int = 32, output_scale: int = 4,
                 seed: int = 0):
        super().__init__()
        out = output_scale * num_blocks
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.fixed = nn.Sequential(
                nn.Linear(num_blocks, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, out))
            self.learned = nn.Sequential(
                nn.Linear(num_blocks, hidden), nn.ReLU(), nn.Linear(hidden, out))
        self.fixed.requires_grad_(False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = codes.float()
        return ((self.fixed(x) - self.learned(x)) ** 2).sum()


class ReplayBuffer:
    """The last ``max_size`` steps: ``codes`` (n, blocks), ``rewards`` (n,) without the
    novelty bonus, ``probs`` (n, blocks) = π_old of each block's action, ``step``."""

    def __init__(self, max_size: int = 30):
        if max_size < 1:
            raise ValueError(f'the replay buffer needs max_size >= 1, got {max_size}')
        self.max_size = max_size
        self.entries: List[dict] = []

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, codes, rewards, probs, step: int) -> None:
        self.entries.append(dict(codes=codes.clone(), rewards=rewards.clone(),
                                 probs=probs.detach().clone(), step=int(step)))
        del self.entries[:-self.max_size]

    def sample(self, generator: Optional[torch.Generator] = None) -> dict:
        index = int(torch.randint(len(self.entries), (1, ), generator=generator))
        return self.entries[index]

    def state_dict(self) -> dict:
        return dict(max_size=self.max_size, entries=copy.deepcopy(self.entries))

    def load_state_dict(self, state: dict) -> None:
        self.max_size = state['max_size']
        self.entries = copy.deepcopy(state['entries'])


class EANReinforce:
    """The controller search's state and its :meth:`step` (see the module docstring).

    Args:
        controller (ConnectionController): the policy to train.
        codes_per_step (int): codes sampled and scored per step (authors: 1 + 2).
        lr (float): learning rate of the controller and of the RND learner (authors: 5e-2).
        optimizer (str): ``'Adam'`` (authors) or ``'SGD'`` (plain gradient steps).
        baseline_decay (float): EMA decay of the baseline (authors: 0.95).
        rnd (bool): add the RND novelty bonus to the rewards.
        replay (bool): the PPO-style replay update.
        replay_start (int): first (0-based) step with a replay update (authors: 10).
        replay_buffer (int): steps kept for the replay (authors: 30).
        replay_clip (float), replay_weight (float): ratio clip ``1 ± clip`` and the loss
            weight (authors: 0.1 and 0.1).
        seed (int): seeds the generator of the codes and replay draws, and the RND nets.
    """

    def __init__(self, controller: ConnectionController, codes_per_step: int = 3,
                 lr: float = 5e-2, optimizer: str = 'Adam', baseline_decay: float = 0.95,
                 rnd: bool = True, replay: bool = True, replay_start: int = 10,
                 replay_buffer: int = 30, replay_clip: float = 0.1,
                 replay_weight: float = 0.1, seed: int = 0):
        if codes_per_step < 1:
            raise ValueError(f'codes_per_step must be >= 1, got {codes_per_step}')
        optimizers = dict(Adam=torch.optim.Adam, SGD=torch.optim.SGD)
        if optimizer not in optimizers:
            raise ValueError(f'optimizer must be one of {sorted(optimizers)}, got {optimizer!r}')
        self.controller = controller
        self.codes_per_step = codes_per_step
        self.baseline_decay = baseline_decay
        self.replay_start = replay_start
        self.replay_clip = replay_clip
        self.replay_weight = replay_weight
        self.optimizer = optimizers[optimizer](controller.parameters(), lr=lr)
        self.rnd = RNDBonus(controller.num_blocks, seed=seed) if rnd else None
        self.rnd_optimizer = optimizers[optimizer](self.rnd.learned.parameters(), lr=lr) \
            if rnd else None
        self.buffer = ReplayBuffer(replay_buffer) if replay else None
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: Optional[float] = None
        self.num_steps = 0  # steps done

    def step(self, reward_fn: Callable[[torch.Tensor], torch.Tensor]) -> dict:
        """Sample codes, score them with ``reward_fn(codes) → (n,) rewards``, update.

        Returns the step's record: ``step``, ``codes``, ``rewards`` (as scored), ``bonus``,
        ``baseline``, ``advantages``, ``loss``, ``replay_loss`` (None when no replay).
        """
        codes, log_probs = self.controller.sample(self.codes_per_step, self.generator)
        rewards = torch.as_tensor(reward_fn(codes), dtype=torch.float64).reshape(-1)
        if self.buffer is not None:  # the replay scores codes without the novelty bonus
            self.buffer.add(codes, rewards, log_probs.exp(), self.num_steps)
        bonus = self.rnd(codes) if self.rnd is not None else None
        total = rewards + (float(bonus.detach()) if bonus is not None else 0.0)
        # as the authors: the baseline sees this step's rewards before the advantage is taken
        self.baseline = ema_baseline(self.baseline, total, self.baseline_decay)
        advantages = total - self.baseline
        loss = reinforce_loss(log_probs, advantages)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if bonus is not None:
            self.rnd_optimizer.zero_grad()
            bonus.backward()
            self.rnd_optimizer.step()

        replayed = None
        if self.buffer is not None and self.num_steps >= self.replay_start:
            entry = self.buffer.sample(self.generator)
            log_pi = self.controller.log_prob(entry['codes'])
            ratio = log_pi.detach().exp() / entry['probs']
            replayed = replay_loss(log_pi, ratio, entry['rewards'] - self.baseline,
                                   self.replay_clip, self.replay_weight)
            self.optimizer.zero_grad()
            replayed.backward()
            self.optimizer.step()

        record = dict(step=self.num_steps, codes=codes, rewards=rewards,
                      bonus=None if bonus is None else float(bonus.detach()),
                      baseline=self.baseline, advantages=advantages, loss=float(loss.detach()),
                      replay_loss=None if replayed is None else float(replayed.detach()))
        self.num_steps += 1
        return record

    def state_dict(self) -> dict:
        """Everything a resumed search needs to continue exactly."""
        return dict(
            controller=self.controller.state_dict(),
            optimizer=self.optimizer.state_dict(),
            rnd=None if self.rnd is None else self.rnd.state_dict(),
            rnd_optimizer=None if self.rnd is None else self.rnd_optimizer.state_dict(),
            buffer=None if self.buffer is None else self.buffer.state_dict(),
            generator=self.generator.get_state(),
            baseline=self.baseline,
            num_steps=self.num_steps)

    def load_state_dict(self, state: dict) -> None:
        for name, part in (('rnd', self.rnd), ('buffer', self.buffer)):
            if (state[name] is None) != (part is None):
                raise ValueError(f'the saved search has {name} '
                                 f'{"off" if state[name] is None else "on"}, this one has it '
                                 f'{"off" if part is None else "on"}; resume with the same '
                                 'settings')
        self.controller.load_state_dict(state['controller'])
        self.optimizer.load_state_dict(state['optimizer'])
        if self.rnd is not None:
            self.rnd.load_state_dict(state['rnd'])
            self.rnd_optimizer.load_state_dict(state['rnd_optimizer'])
        if self.buffer is not None:
            self.buffer.load_state_dict(state['buffer'])
        self.generator.set_state(state['generator'])
        self.baseline = state['baseline']
        self.num_steps = state['num_steps']
