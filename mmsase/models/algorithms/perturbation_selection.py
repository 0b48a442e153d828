"""DARTS-PT: choose each edge's operation by how much the supernet needs it, not by ``α``.

Wang, Cheng, Chen, Tang and Hsieh, "Rethinking Architecture Selection in Differentiable NAS",
ICLR 2021; reference code https://github.com/ruocwang/darts-pt (``sota/cnn/projection.py``,
``project_op``).

The magnitude of ``α`` need not say how much an operation contributes to the supernet's
output. Perturbation-based selection measures it instead. The edges are visited in a random
(seeded) order; on edge ``e`` each operation ``o`` in turn is masked — its weight ``w_eo`` set
to 0, the edge's other weights left as they are (no renormalisation) — and the supernet's
accuracy on the architecture split is measured. The edge keeps the operation whose removal
hurts most::

    op*(e) = argmin_o Acc(supernet with w_eo = 0)

(criterion ``'acc'``, ties broken by the larger loss; criterion ``'loss'``:
``argmax_o Loss(supernet with w_eo = 0)``). From then on the edge is *projected*: its weights
are the one-hot row of ``op*(e)`` in every later evaluation. Optionally the weights ``w`` are
fine-tuned between edges, with the projected edges fixed, as the authors do.

Evaluation uses batch statistics in the BN layers ("disable running stats for projection" in
the reference code), but the model's running statistics are left as they were; every other
module runs in eval mode (no dropout), so each measurement is deterministic. The masked and
projected weights are applied with :meth:`ArchitectureParams.transformed
<mmsase.models.sase.supernet.ArchitectureParams.transformed>`; ``α`` itself is never changed.
"""
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import torch
from mmpretrain.models import ImageClassifier
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


#: ``'acc'``: keep the op whose masking gives the lowest accuracy (the paper's default);
#: ``'loss'``: the op whose masking gives the highest loss.
CRITERIA = ('acc', 'loss')


@dataclass(frozen=True)
class EdgeMeasurement:
    """The supernet on the architecture split with each operation of one edge masked.

    Attributes:
        edge: the edge's name (one of the search space's edges).
        op_names: its operations, in the order of ``α``'s columns.
        accuracies: top-1 accuracy in [0, 1] with ``op_names[j]`` masked, one per op.
        losses: the classifier's mean loss per image with ``op_names[j]`` masked.
        kept: the operation chosen, ``op*(e)``.
    """
    edge: str
    op_names: Tuple[str, ...]
    accuracies: Tuple[float, ...]
    losses: Tuple[float, ...]
    kept: str


@dataclass(frozen=True)
class SelectionResult:
    """What :func:`select_by_perturbation` found.

    Attributes:
        genotype: edge → kept operation, in the search space's edge order.
        edge_order: the edges in the order they were visited and projected.
        measurements: edge → its :class:`EdgeMeasurement` (taken with the edges visited
            before it projected).
    """
    genotype: Dict[str, str]
    edge_order: Tuple[str, ...]
    measurements: Dict[str, EdgeMeasurement]


def select_by_perturbation(search_model: nn.Module,
                           batches: Iterable[dict],
                           criterion: str = 'acc',
                           seed: int = 0,
                           tune_batches: Optional[Iterable[dict]] = None,
                           tune_iters: int = 0,
                           tune_lr: Optional[float] = None) -> SelectionResult:
    """Perturbation-based architecture selection (DARTS-PT) on a trained search.

    Args:
        search_model: a :class:`~mmsase.models.algorithms.SASESearch` (its ``classifier``,
            ``architecture`` and ``data_preprocessor`` are used).
        batches: raw batches of the architecture split, as its data loader yields them
            (``dict(inputs=..., data_samples=...)``). Read once and kept: every evaluation
            sees the same images.
        criterion: one of :data:`CRITERIA`.
        seed: seeds the order in which the edges are visited.
        tune_batches: raw batches of the weight split for the fine-tuning, cycled through
            (a data loader restarts when exhausted). Needed when ``tune_iters > 0``.
        tune_iters: SGD iterations (momentum 0.9) on the weights after each edge but the
            last, with the projected edges fixed; 0 (default) does no tuning.
        tune_lr: the fine-tuning's learning rate (the authors use the search's weight
            learning rate / 10). Needed when ``tune_iters > 0``.

    Returns:
        SelectionResult: the genotype, the edge order and the measurements per edge.

    Raises:
        ValueError: an unknown ``criterion``, no batches, ``α`` not finite, or tuning asked
            for without ``tune_batches``/a positive ``tune_lr``; the message names the value.

    With ``tune_iters == 0`` the model's weights, buffers, ``α`` and train/eval modes are
    left as they were. Tuning changes the weights (and BN running statistics) in place.
    """
    batches = list(batches)
    _check_arguments(criterion, batches, tune_batches, tune_iters, tune_lr)
    architecture = search_model.architecture
    if not architecture.alpha.detach().isfinite().all():
        raise ValueError('α is not finite (NaN or inf): the search diverged and no genotype '
                         'can be derived')
    edges = architecture.space.edges
    edge_order = tuple(random.Random(seed).sample(edges, len(edges)))
    tuner = _WeightTuner(search_model, tune_batches, tune_lr) if tune_iters > 0 else None
    projected: Dict[int, int] = {}  # edge row -> the column of its kept op
    measurements = {}
    for position, edge in enumerate(edge_order):
        row = edges.index(edge)
        op_names = architecture.op_names[edge]
        accuracies, losses = [], []
        for column in range(len(op_names)):
            accuracy, loss = evaluate(
                search_model, batches,
                lambda weights: project_and_mask(weights, projected, (row, column)))
            accuracies.append(accuracy)
            losses.append(loss)
        kept = kept_column(accuracies, losses, criterion,
                           [name not in architecture.space.excluded for name in op_names])
        projected[row] = kept
        measurements[edge] = EdgeMeasurement(edge, tuple(op_names), tuple(accuracies),
                                             tuple(losses), op_names[kept])
        if tuner is not None and position < len(edge_order) - 1:
            tuner.tune(tune_iters, lambda weights: project_and_mask(weights, projected))
    genotype = {edge: measurements[edge].kept for edge in edges}
    return SelectionResult(genotype, edge_order, measurements)


def project_and_mask(weights: Tensor,
                     projected: Mapping[int, int],
                     masked: Optional[Tuple[int, int]] = None) -> Tensor:
    """The operation weights with edges projected and one operation masked.

    Args:
        weights: ``(edges, ops)`` weights from ``ArchitectureParams.probabilities()``.
        projected: row → column: that row becomes one-hot at that column.
        masked: ``(row, column)`` whose weight becomes 0 (the row's others unchanged).

    Returns:
        Tensor: a new ``(edges, ops)`` tensor, detached from ``α`` (selection never trains
        ``α``, and a tuning step's backward pass must not reach it).
    """
    weights = weights.detach().clone()
    for row, column in projected.items():
        weights[row] = 0
        weights[row, column] = 1
    if masked is not None:
        weights[masked] = 0
    return weights


def kept_column(accuracies: List[float], losses: List[float], criterion: str,
                selectable: Optional[List[bool]] = None) -> int:
    """The op to keep from its masked measurements: the lowest accuracy (ties: the larger
    loss, then the first) for ``'acc'``, the largest loss (ties: the first) for ``'loss'``;
    among the ``selectable`` columns only (default: all; AutoLA's ``none`` is measured but
    never kept)."""
    columns = [j for j in range(len(accuracies)) if selectable is None or selectable[j]]
    if criterion == 'acc':
        return min(columns, key=lambda j: (accuracies[j], -losses[j]))
    return max(columns, key=lambda j: (losses[j], -j))


@torch.no_grad()
def evaluate(search_model: nn.Module, batches: List[dict],
             transform: Callable[[Tensor], Tensor]) -> Tuple[float, float]:
    """Top-1 accuracy in [0, 1] and mean loss per image of the supernet on ``batches`` (raw),
    its operation weights changed by ``transform``, with BN batch statistics; the model's
    buffers and modes are restored afterwards."""
    classifier = search_model.classifier
    correct = images = 0
    loss_sum = 0.0
    with search_model.architecture.transformed(transform), _batch_statistics(classifier):
        for raw in batches:
            batch = search_model.data_preprocessor(raw, False)
            losses, predictions = _losses_and_predictions(classifier, batch)
            loss, _ = classifier.parse_losses(losses)
            predicted = torch.cat([sample.pred_label for sample in predictions])
            labels = torch.cat([sample.gt_label for sample in predictions])
            if predicted.shape != labels.shape:
                raise ValueError('accuracy needs one ground-truth label per image, got '
                                 f'{labels.numel()} labels for {predicted.numel()} images')
            correct += int((predicted == labels).sum())
            images += len(predictions)
            loss_sum += float(loss) * len(predictions)
    return correct / images, loss_sum / images


def _losses_and_predictions(classifier: nn.Module, batch: dict):
    """The classifier's ``'loss'`` and ``'predict'`` outputs on a preprocessed batch.

    For mmpretrain's ``ImageClassifier`` (these two modes not overridden) both are its head's
    ``loss``/``predict`` of the same features, so one backbone pass serves both; BN batch
    statistics make a second pass give the same features anyway, at twice the cost.
    """
    cls = type(classifier)
    if isinstance(classifier, ImageClassifier) and cls.loss is ImageClassifier.loss \
            and cls.predict is ImageClassifier.predict:
        feats = classifier.extract_feat(batch['inputs'])
        return (classifier.head.loss(feats, batch['data_samples']),
                classifier.head.predict(feats, batch['data_samples']))
    return classifier(**batch, mode='loss'), classifier(**batch, mode='predict')


@contextmanager
def _batch_statistics(model: nn.Module) -> Iterator[None]:
    """BN layers normalise with the batch's statistics, everything else is in eval mode; on
    exit every module's mode and every buffer (running statistics) is as before."""
    modes = {module: module.training for module in model.modules()}
    buffers = [(buffer, buffer.clone()) for buffer in model.buffers()]
    model.eval()
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.train()
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in modes.items():
            module.training = training


class _WeightTuner:
    """SGD (momentum 0.9) on the classifier's weights over the weight split, in train mode,
    as the search's weight step but with the projected edges fixed."""

    def __init__(self, search_model: nn.Module, batches: Iterable[dict], lr: float):
        self.search_model = search_model
        self.batches = _cycle(batches)
        params = [p for p in search_model.classifier.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9)

    def tune(self, iters: int, transform: Callable[[Tensor], Tensor]) -> None:
        classifier = self.search_model.classifier
        modes = {module: module.training for module in classifier.modules()}
        classifier.train()
        try:
            with self.search_model.architecture.transformed(transform):
                for _ in range(iters):
                    batch = self.search_model.data_preprocessor(next(self.batches), True)
                    loss, _ = classifier.parse_losses(classifier(**batch, mode='loss'))
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
            self.optimizer.zero_grad()
        finally:
            for module, training in modes.items():
                module.training = training


def _cycle(batches: Iterable[dict]) -> Iterator[dict]:
    """The batches over and over (a data loader starts a new epoch each time round)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError('tune_batches yielded no batch')


def _check_arguments(criterion: str, batches: list, tune_batches, tune_iters: int,
                     tune_lr: Optional[float]) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f'unknown criterion {criterion!r}; allowed: {CRITERIA}')
    if not batches:
        raise ValueError('no batches of the architecture split to evaluate on')
    if isinstance(tune_iters, bool) or not isinstance(tune_iters, int) or tune_iters < 0:
        raise ValueError(f'tune_iters must be an int >= 0, got {tune_iters!r}')
    if tune_iters > 0:
        if tune_batches is None:
            raise ValueError(f'tune_iters={tune_iters} needs tune_batches (the weight split)')
        if tune_lr is None or not tune_lr > 0:
            raise ValueError(f'tune_iters={tune_iters} needs a positive tune_lr, got '
                             f'{tune_lr!r}')
