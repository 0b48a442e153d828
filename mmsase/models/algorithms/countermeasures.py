"""Collapse countermeasures of the SASE search: warm-up, β-decay, random smoothing, FairDARTS.

DARTS tends to crown the operation that learns fastest rather than the one that helps most,
and to decide on noise when the supernet is still untrained. The remedies below come from the
authors' public code (references per item); each is one key of ``SASESearch``::

    model = dict(
        type='mmsase.SASESearch',
        warmup_epochs=10,                                    # weights only, α frozen
        beta_decay=dict(max_weight=25.0),                    # β-DARTS
        random_smoothing=dict(max_epsilon=0.3),              # SDARTS-RS
        fair_darts=None,                                     # or dict(zero_one_weight=10.0)
        ...)

* **warm-up** (PC-DARTS ``train_search.py``: ``if epoch >= 15: architect.step``): during the
  first ``warmup_epochs`` epochs only the weights train; α and its optimizer are untouched.
* **β-decay** (β-DARTS, Ye et al. CVPR 2022, ``architect.py``): ``λ(t) · mean_e
  logsumexp_o(α_eo)`` added to the architecture loss; its gradient ``λ · softmax(α_e) / E``
  shrinks each logit by its own weight, so no operation runs away. ``λ`` ramps linearly from
  0 at the end of warm-up to ``max_weight`` at the last epoch (the authors' NAS-Bench-201 run:
  ``λ = epoch / 2`` over 100 epochs, i.e. 0 → 49.5).
* **random smoothing** (SDARTS-RS, Chen & Hsieh ICML 2020, ``attacker/perturb.py``): the
  *weight* step runs with ``renorm(clip(softmax(α) + U(−ε, ε), 0, 1))``, one draw per step
  shared by all blocks; the architecture step is plain DARTS. ``ε = min + (max − min) · epoch /
  epochs`` (the authors' ``0.03 + (0.3 − 0.03) · epoch / epochs``).
* **FairDARTS** (Chu et al. ECCV 2020, ``separate_loss.py``): independent ``σ(α)`` weights
  instead of softmax, plus ``zero_one_weight · L01``, ``L01 = −mean((σ(α) − 0.5)²)`` in the
  architecture loss (weight 10, constant, as the authors'). SASE keeps one operation per edge
  (argmax), so FairDARTS' threshold derive does not apply; it is not in the recommended set.

The noise of the weight step comes from a generator seeded with ``(seed, iteration)``: every
rank draws the same, and a resumed search the same as an uninterrupted one. The schedules
read the epoch from mmengine's message hub (``RuntimeInfoHook`` sets ``epoch``, ``iter`` and
``max_epochs``; they are restored on ``--resume``).
"""
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.logging import MessageHub
from torch import Tensor


@dataclass(frozen=True)
class SearchProgress:
    """Where the search is: ``epoch`` (finished epochs, 0-based like ``runner.epoch``),
    ``max_epochs`` and ``iteration`` (finished iterations, like ``runner.iter``)."""
    epoch: int
    max_epochs: int
    iteration: int

    @classmethod
    def from_message_hub(cls) -> 'SearchProgress':
        hub = MessageHub.get_current_instance()
        info = {key: hub.get_info(key) for key in ('epoch', 'max_epochs', 'iter')}
        missing = [key for key, value in info.items() if value is None]
        if missing:
            raise RuntimeError(
                f'the search countermeasures follow the epoch, but the message hub has no '
                f'{missing}: run the search with mmengine\'s Runner (its RuntimeInfoHook sets '
                f'them) or set them with MessageHub.get_current_instance().update_info(...)')
        return cls(info['epoch'], info['max_epochs'], info['iter'])


def linear_ramp(epoch: int, start_epoch: int, max_epochs: int, low: float,
                high: float) -> float:
    """``low`` before ``start_epoch``, then ``low + (high − low) · (epoch − start) / (max −
    start)``: the value of the authors' ``epoch / epochs`` schedules, started after warm-up."""
    if epoch < start_epoch or max_epochs <= start_epoch:
        return low
    return low + (high - low) * (epoch - start_epoch) / (max_epochs - start_epoch)


def beta_decay_loss(alpha: Tensor, centred: bool = False) -> Tensor:
    """β-DARTS' regulariser ``mean_e logsumexp_o(α_eo)`` of the ``(edges, ops)`` logits;
    ``centred`` subtracts each edge's mean logit: ``mean_e (logsumexp_o α_eo − mean_o α_eo)``.

    Both move ``softmax(α)`` alike (softmax ignores a common shift of an edge's logits); the
    centred gradient ``(softmax(α_e) − 1/K) / E`` lacks the common part ``1/(K·E)``, which
    under Adam's per-element normalisation would drown the validation gradient and freeze α.
    """
    penalty = torch.logsumexp(alpha, dim=-1)
    if centred:
        penalty = penalty - alpha.mean(dim=-1)
    return penalty.mean()


def zero_one_loss(alpha: Tensor) -> Tensor:
    """FairDARTS' ``−mean((σ(α) − 0.5)²)``: lowest when every weight is 0 or 1."""
    return -((alpha.sigmoid() - 0.5) ** 2).mean()


def smooth_weights(weights: Tensor, noise: Tensor, renormalise: bool) -> Tensor:
    """SDARTS-RS' ``clip(weights + noise, 0, 1)``, each row divided by its sum when the
    weights are a softmax (``renormalise``)."""
    perturbed = (weights + noise).clamp(0, 1)
    if renormalise:
        perturbed = perturbed / perturbed.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return perturbed


class Countermeasures:
    """The countermeasures one search uses and their schedules.

    Args:
        warmup_epochs: epochs with the weight step only.
        beta_decay: ``dict(max_weight=25.0)`` turns β-decay on.
        random_smoothing: ``dict(max_epsilon=0.3, min_epsilon=0.03, seed=0)`` turns SDARTS-RS
            on.
        fair_darts: ``dict(zero_one_weight=10.0)`` turns FairDARTS on (σ weights + L01).
    """

    def __init__(self,
                 warmup_epochs: int = 0,
                 beta_decay: Optional[dict] = None,
                 random_smoothing: Optional[dict] = None,
                 fair_darts: Optional[dict] = None) -> None:
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f'warmup_epochs must be an int >= 0, got {warmup_epochs!r}')
        self.warmup_epochs = warmup_epochs
        self.beta_decay = _options('beta_decay', beta_decay,
                                   dict(max_weight=25.0, centred=False))
        self.random_smoothing = _options('random_smoothing', random_smoothing,
                                         dict(max_epsilon=0.3, min_epsilon=0.03, seed=0))
        self.fair_darts = _options('fair_darts', fair_darts, dict(zero_one_weight=10.0))
        if self.random_smoothing and not (
                0 <= self.random_smoothing['min_epsilon'] <= self.random_smoothing[
                    'max_epsilon'] <= 1):
            raise ValueError('random_smoothing needs 0 <= min_epsilon <= max_epsilon <= 1, '
                             f'got {self.random_smoothing}')

    @property
    def weighting(self) -> str:
        """How α becomes operation weights: ``'sigmoid'`` (FairDARTS) or ``'softmax'``."""
        return 'sigmoid' if self.fair_darts else 'softmax'

    @property
    def scheduled(self) -> bool:
        """Whether any countermeasure depends on the epoch (then the progress is needed)."""
        return bool(self.warmup_epochs or self.beta_decay or self.random_smoothing)

    def architecture_frozen(self, progress: SearchProgress) -> bool:
        return progress.epoch < self.warmup_epochs

    def regularisers(self, alpha: Tensor, progress: Optional[SearchProgress]
                     ) -> Dict[str, Tensor]:
        """The terms added to the architecture loss, by log name (empty if none is on)."""
        terms = {}
        if self.beta_decay:
            weight = linear_ramp(progress.epoch, self.warmup_epochs, progress.max_epochs,
                                 0.0, self.beta_decay['max_weight'])
            terms['loss_beta_decay'] = weight * beta_decay_loss(alpha,
                                                                self.beta_decay['centred'])
        if self.fair_darts:
            terms['loss_zero_one'] = self.fair_darts['zero_one_weight'] * zero_one_loss(alpha)
        return terms

    def smoothing_epsilon(self, progress: SearchProgress) -> float:
        options = self.random_smoothing
        return linear_ramp(progress.epoch, 0, progress.max_epochs, options['min_epsilon'],
                           options['max_epsilon'])

    def smoothing_noise(self, shape, progress: SearchProgress) -> Tensor:
        """``U(−ε, ε)`` of ``shape``, drawn from ``(seed, iteration)`` alone."""
        seed = int(np.random.SeedSequence(
            [self.random_smoothing['seed'], progress.iteration]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        epsilon = self.smoothing_epsilon(progress)
        return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * epsilon


def _options(name: str, given: Optional[dict], defaults: dict) -> Optional[dict]:
    if given is None or given is False:
        return None
    if given is True:
        given = {}
    if not isinstance(given, dict):
        raise TypeError(f'{name} must be a dict of options (or None), got {given!r}')
    unknown = set(given) - set(defaults)
    if unknown:
        raise ValueError(f'unknown {name} option(s) {sorted(unknown)}; allowed: '
                         f'{sorted(defaults)}')
    return {**defaults, **given}
