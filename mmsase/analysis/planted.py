"""Planted benchmarks for the SASE search: data whose classes differ only in a statistic that
some operations read and others provably cannot, so the right answer of an edge is known.

One supernet block is searched on ``(B, 8, 8, 8)`` inputs; a linear head reads the block's
attention maps only (``m1`` for the channel benchmarks, ``ms`` for the spatial one, both for
the noise benchmark), so the class is visible to the loss only through what the attention
computes. Every sample is standardised exactly (per channel over the positions, or per
position over the channels), so means and standard deviations carry nothing unless planted.

=============  =======  =============================================================  =========================
benchmark      edge     the classes differ in                                          recovered if the edge picks
=============  =======  =============================================================  =========================
std            cs       the scale: ``x = s · z``, z Gaussian, s ≈ 0.95 / 1.05        gsop, l4, gap_gmp, gap_std
skew           cs       the sign of the skew: ``±(Exp(1) − 1)``                          gap_skew, gap_gmp
max            cs       the tails: uniform (max √3) / Laplace (unbounded)             l4, gap_gmp
spatial_skew   ss1      where the channels are skewed: ``+`` in the class's quadrant   gap_skew, gap_gmp
noise          all      (``std``'s data) a test-only ``noise`` op in every set         anything but ``noise``
=============  =======  =============================================================  =========================

Why those sets, from the formulas (spec §2), for data with exact mean 0 and std 1 (``std``:
std ``s_k``) along the squeezed axis:

* ``gap`` reads the mean: 0 for every sample. ``gap_std`` reads mean and std: only ``std``.
* ``std_l2`` standardises across the other axis before its L2 norm: invariant to a common
  scale (``std``), and a second-order statistic (not ``skew``, ``max``).
* ``gsop`` is a covariance: second order, so it reads the scale (``std``) only.
* ``l4 = (mean x⁴)^¼``: the scale (``std``) and the kurtosis (``max``: 1.8 against 6); the
  two skews have the same kurtosis.
* ``gap_gmp`` reads the maximum: larger with the scale, with a long right tail (``skew``) and
  with heavy tails (``max``).
* ``gap_skew`` reads the standardised third moment: ``skew`` only.

The ``noise`` operation (the RobustDARTS S4 analogue) returns N(0, 1) noise of the right shape
(squeeze sets) or its sigmoid (excitation sets): choosing it is a failure by construction.
"""
import contextlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper
from torch import Tensor, nn

from mmsase.models.search_space import EDGES, OP_SETS
from mmsase.registry import MODELS

CHANNELS, SIZE, NUM_CLASSES = 8, 8, 2
#: how strongly the planted statistic shows, per data (1: clean; ``std``: the relative scale
#: difference). Weak enough that the task is not solved outright (then the architecture
#: gradient would vanish), strong enough that the probe learns it.
STRENGTH = dict(std=0.1, skew=0.7, max=0.7, spatial_skew=0.7)


@dataclass(frozen=True)
class Benchmark:
    name: str
    edges: Tuple[str, ...]          # the edges scored
    recovered: Tuple[str, ...]      # an edge is recovered if it picks one of these
    readout: str                    # 'channel' (m1), 'spatial' (ms) or 'both'
    data: str                       # the data generator's name
    weights_lr: float = 0.2         # the spatial path (one ReLU channel in ``fuse``) dies
                                    # at a large step: it trains at 0.02


BENCHMARKS: Dict[str, Benchmark] = {b.name: b for b in (
    Benchmark('std', ('cs', ), ('gsop', 'l4', 'gap_gmp', 'gap_std'), 'channel', 'std'),
    Benchmark('skew', ('cs', ), ('gap_skew', 'gap_gmp'), 'channel', 'skew'),
    Benchmark('max', ('cs', ), ('l4', 'gap_gmp'), 'channel', 'max'),
    Benchmark('spatial_skew', ('ss1', ), ('gap_skew', 'gap_gmp'), 'spatial', 'spatial_skew',
              weights_lr=0.02),
    Benchmark('noise', EDGES, (), 'both', 'std'),
)}
NOISE_OP = 'noise'


def _standardise(z: Tensor, dims) -> Tensor:
    z = z - z.mean(dims, keepdim=True)
    return z / z.square().mean(dims, keepdim=True).sqrt().clamp_min(1e-6)


def planted_batch(data: str, batch_size: int, generator: torch.Generator
                  ) -> Tuple[Tensor, Tensor]:
    """``(inputs (B, 8, 8, 8), labels (B,))`` of one benchmark's data, from ``generator``."""
    labels = torch.randint(0, NUM_CLASSES, (batch_size, ), generator=generator)
    shape = (batch_size, CHANNELS, SIZE, SIZE)
    sign = (1 - 2 * labels).float().view(-1, 1, 1, 1)  # class 0: +1, class 1: -1
    space, channel = (2, 3), 1
    if data == 'std':
        # each channel's scale jitters (±10 %) around its class's, so that the scale is
        # evidence, not a label
        scale = 1 + STRENGTH['std'] * torch.tensor([-0.5, 0.5])[labels].view(-1, 1, 1, 1) \
            + 0.1 * torch.randn(batch_size, CHANNELS, 1, 1, generator=generator)
        x = scale * _standardise(torch.randn(shape, generator=generator), space)
    elif data == 'skew':
        x = _standardise(_blend(sign * _exponential(shape, generator), data, generator), space)
    elif data == 'max':
        uniform = torch.rand(shape, generator=generator) * 2 - 1
        laplace = _exponential(shape, generator) * torch.sign(
            torch.rand(shape, generator=generator) - 0.5)
        x = _standardise(_blend(torch.where(labels.view(-1, 1, 1, 1) == 0, uniform, laplace),
                                data, generator), space)
    elif data == 'spatial_skew':
        # skewed across the channels: + in the class's quadrant, − elsewhere (same area for
        # both classes, so each channel's distribution over the positions is the same)
        quadrant = torch.zeros(NUM_CLASSES, 1, SIZE, SIZE)
        half = SIZE // 2
        quadrant[0, :, :half, :half] = 1
        quadrant[1, :, half:, half:] = 1
        skew_sign = quadrant[labels] * 2 - 1
        skewed = _blend(skew_sign * _exponential(shape, generator), data, generator)
        x = _standardise(skewed, channel)
    else:
        raise ValueError(f'unknown planted data {data!r}; allowed: std, skew, max, '
                         'spatial_skew')
    return x, labels


def _blend(planted: Tensor, data: str, generator: torch.Generator) -> Tensor:
    """``a`` of the planted (centred, unit-variance) values plus ``√(1 − a²)`` Gaussian
    noise, ``a = STRENGTH[data]``."""
    planted = (planted - planted.mean()) / planted.std()
    strength = STRENGTH[data]
    return strength * planted + (1 - strength ** 2) ** 0.5 * torch.randn(
        planted.shape, generator=generator)


def _exponential(shape, generator) -> Tensor:
    return -torch.log1p(-torch.rand(shape, generator=generator).clamp_max(1 - 1e-7))


class NoiseOp(nn.Module):
    """The test-only ``noise`` op: N(0, 1) of the set's output shape (squeeze) or its sigmoid
    (excitation), whatever the input."""

    def __init__(self, channels: int, kind: str):
        super().__init__()
        self.channels, self.kind = channels, kind

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        shape = {'channel_squeeze': (b, c, 1, 1), 'spatial_squeeze': (b, 1, h, w)}.get(
            self.kind, x.shape)
        noise = torch.randn(shape, dtype=x.dtype, device=x.device)
        return noise if self.kind.endswith('squeeze') else noise.sigmoid()


@contextlib.contextmanager
def noise_operation() -> Iterator[None]:
    """Within the block, every operation set has an eighth op, ``noise``, and SASE's supernet
    searches the space with it (modules built inside keep it; the sets and the space are
    restored on exit)."""
    from mmsase.models.algorithms.spaces import SearchSpace
    from mmsase.models.sase.supernet import SASESupernet
    from mmsase.models.search_space import EDGE_OP_SET
    space = SASESupernet.search_space
    for name, ops in OP_SETS.items():
        ops[NOISE_OP] = lambda channels, kind=name: NoiseOp(channels, kind)
    SASESupernet.search_space = SearchSpace(
        'SASE with noise', {edge: ops + (NOISE_OP, ) for edge, ops in space.op_names.items()},
        edge_labels=EDGE_OP_SET)
    try:
        yield
    finally:
        SASESupernet.search_space = space
        for ops in OP_SETS.values():
            ops.pop(NOISE_OP, None)


@MODELS.register_module()
class PlantedProbe(BaseModel):
    """One ``SASESupernet`` (reference path) and a linear head on its batch-normalised
    attention maps.

    ``forward(inputs (B, 8, 8, 8), data_samples (B,) labels, mode)``: ``'loss'`` gives the
    cross-entropy, ``'predict'`` mmpretrain ``DataSample``s, ``'tensor'`` the logits.
    """

    def __init__(self, readout: str = 'channel'):
        super().__init__()
        from mmsase.models.sase.supernet import SASESupernet
        self.block = SASESupernet(CHANNELS, fused=False)
        self.readout = readout
        features = dict(channel=CHANNELS, spatial=SIZE * SIZE,
                        both=CHANNELS + SIZE * SIZE)[readout]
        # normalised features: the attention's small differences reach the head at unit scale
        self.head = nn.Sequential(nn.BatchNorm1d(features, affine=False),
                                  nn.Linear(features, NUM_CLASSES))

    def forward(self, inputs: Tensor, data_samples: Optional[Tensor] = None,
                mode: str = 'tensor'):
        m1, ms = self.block.attention_maps(inputs)
        features = dict(channel=[m1.flatten(1)], spatial=[ms.flatten(1)],
                        both=[m1.flatten(1), ms.flatten(1)])[self.readout]
        logits = self.head(torch.cat(features, 1))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, data_samples))
        if mode == 'predict':
            from mmpretrain.structures import DataSample
            return [DataSample().set_gt_label(label).set_pred_label(prediction)
                    for label, prediction in zip(data_samples, logits.argmax(1))]
        return logits


#: method name → the SASESearch keys and whether the genotype is chosen by perturbation.
#: Warm-up is a third of the epochs, as PC-DARTS' 15 of 50.
def methods(epochs: int) -> Dict[str, dict]:
    warmup = max(1, epochs // 3)
    recommended = dict(warmup_epochs=warmup, beta_decay=dict(max_weight=25.0, centred=True),
                       random_smoothing=dict(max_epsilon=0.3))
    return {
        'darts_1st': dict(),
        'darts_2nd': dict(unroll=True),
        'warmup': dict(warmup_epochs=warmup),
        'beta_decay': dict(beta_decay=dict(max_weight=25.0)),
        'smoothing': dict(random_smoothing=dict(max_epsilon=0.3)),
        'fair_darts': dict(fair_darts=dict(zero_one_weight=10.0)),
        'recommended': recommended,
        'recommended_pt': dict(recommended, select='pt'),
    }


@dataclass
class PlantedResult:
    benchmark: str
    method: str
    seed: int
    winners: Dict[str, str]          # scored edge → the op picked
    recovered: bool
    planted_weight: float            # the best weight among the recovered set (1 − noise's)
    margin: float                    # that weight minus the best other weight
    accuracy: float                  # the probe's held-out top-1 (%) at the end


def run_planted(benchmark: str, method: str, seed: int, steps: int = 320, epochs: int = 8,
                batch_size: int = 32, architecture_lr: float = 1e-2,
                method_options: Optional[dict] = None) -> PlantedResult:
    """One search of one benchmark with one method; see the module docstring."""
    from mmsase.models.algorithms import SASESearch
    spec = BENCHMARKS[benchmark]
    options = dict(methods(epochs)[method] if method_options is None else method_options)
    select = options.pop('select', 'argmax')
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(10_000 + seed)
    context = noise_operation() if benchmark == 'noise' else contextlib.nullcontext()
    with context:
        model = SASESearch(architecture=dict(type='mmsase.PlantedProbe', readout=spec.readout),
                           **options)
    optim_wrapper = build_optim_wrapper(model, dict(
        constructor='mmsase.SearchOptimWrapperConstructor',
        weights=dict(optimizer=dict(type='SGD', lr=spec.weights_lr, momentum=0.9,
                                    weight_decay=5e-4)),
        architecture=dict(optimizer=dict(type='Adam', lr=architecture_lr, betas=(0.5, 0.999),
                                         weight_decay=1e-3))))
    hub = MessageHub.get_current_instance()
    steps_per_epoch = max(1, steps // epochs)
    model.train()
    for step in range(steps_per_epoch * epochs):
        hub.update_info('epoch', step // steps_per_epoch)
        hub.update_info('iter', step)
        hub.update_info('max_epochs', epochs)
        batches = [planted_batch(spec.data, batch_size, generator) for _ in range(2)]
        data = {part: dict(inputs=x, data_samples=y)
                for part, (x, y) in zip(('weights', 'architecture'), batches)}
        model.train_step(data, optim_wrapper)

    held_out = [planted_batch(spec.data, 128, generator) for _ in range(8)]
    genotype = model.derive()
    if select == 'pt':
        from mmsase.models.algorithms.perturbation_selection import select_by_perturbation
        batches = [dict(inputs=x, data_samples=y) for x, y in held_out]
        genotype = select_by_perturbation(model, batches, seed=seed).genotype
    return _score(spec, method, seed, model, genotype, held_out)


def _score(spec: Benchmark, method: str, seed: int, model, genotype: Dict[str, str],
           held_out: Sequence[Tuple[Tensor, Tensor]]) -> PlantedResult:
    weights = model.architecture.probabilities().detach()
    names = model.architecture.op_names
    winners = {edge: genotype[edge] for edge in spec.edges}
    planted, margins = [], []
    for edge in spec.edges:
        row = dict(zip(names[edge], weights[EDGES.index(edge)].tolist()))
        good = [w for op, w in row.items() if _is_recovered(spec, op)]
        bad = [w for op, w in row.items() if not _is_recovered(spec, op)]
        planted.append(max(good))
        margins.append(max(good) - max(bad))
    recovered = all(_is_recovered(spec, op) for op in winners.values())
    # BN on batch statistics, as DARTS-PT evaluates a supernet
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in held_out)
    accuracy = 100.0 * correct / sum(len(y) for _, y in held_out)
    return PlantedResult(spec.name, method, seed, winners, recovered, min(planted),
                         min(margins), accuracy)


def _is_recovered(spec: Benchmark, op: str) -> bool:
    return op != NOISE_OP if spec.name == 'noise' else op in spec.recovered


def summarise(results: List[PlantedResult]) -> Tuple[int, int]:
    """``(recovered, total)`` over ``results``."""
    return sum(r.recovered for r in results), len(results)
