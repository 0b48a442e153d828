"""The differentiable search as an mmengine model: bi-level DARTS over the architecture logits
shared by a network's supernet blocks.

The search space is the one the blocks declare (``SASESupernet``: SASE's six edges;
``mmsase.AutoLASupernet``: AutoLA's ten; :mod:`.spaces`). ``mmsase.SASESearch`` and
``mmsase.DARTSSearch`` are two registry names of one class.

Config::

    model = dict(
        type='mmsase.SASESearch',
        unroll=False,                       # True: second-order (unrolled) DARTS
        architecture=dict(                  # the supernet classifier (mmpretrain scope)
            type='ImageClassifier',
            backbone=dict(type='mmsase.CifarResNet', depth=20,
                          attention=dict(type='SASESupernet')),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=64),
            data_preprocessor=dict(...)))   # or SASESearch(data_preprocessor=...)

(an AutoLA search: ``attention=dict(type='mmsase.AutoLASupernet')``).

Every iteration (see :meth:`SASESearch.train_step`) first updates ``alpha`` on the
architecture split, then the weights on the weight split. The collapse countermeasures
(warm-up, β-decay, random smoothing, FairDARTS; :mod:`.countermeasures`) are keys of the model
config. It needs the optimizer wrappers
built by ``mmsase.SearchOptimWrapperConstructor`` and the batches of
``mmsase.BilevelEpochBasedTrainLoop``.
"""
import copy
from contextlib import contextmanager
from typing import Dict, Iterable, Optional, Union

import torch
from mmengine.dist import all_reduce, broadcast, get_world_size
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import Tensor, nn

from mmsase.registry import MODELS
from .architect import Architect
from .architecture_params import ArchitectureParams, bind_architecture, searchable_blocks
from .countermeasures import Countermeasures, SearchProgress, smooth_weights


def classification_loss(classifier: BaseModel, batch: dict) -> Tensor:
    """The classifier's total loss on a preprocessed ``batch`` (for :class:`Architect`)."""
    loss, _ = classifier.parse_losses(classifier(**batch, mode='loss'))
    return loss


@MODELS.register_module(name='DARTSSearch')
@MODELS.register_module()
class SASESearch(BaseModel):
    """A classifier with supernet blocks plus the architecture logits they share.

    Args:
        architecture (dict): config of the classifier (an mmpretrain ``ImageClassifier`` or
            anything with ``forward(inputs, data_samples, mode)``, ``parse_losses`` and
            ``val_step``) containing supernet blocks of one search space
            (:class:`~.architecture_params.SearchableBlock`: ``SASESupernet``,
            ``AutoLASupernet``). Types without a scope prefix
            are looked up in mmpretrain unless the dict sets ``_scope_``.
        unroll (bool): second-order (unrolled) DARTS if True, first order otherwise.
        data_preprocessor (dict, optional): overrides the classifier's own
            ``data_preprocessor``. Either way one preprocessor serves both splits and
            validation.
        warmup_epochs (int): epochs that train the weights only (α frozen).
        beta_decay (dict, optional): β-DARTS regularisation, e.g. ``dict(max_weight=25.0)``.
        random_smoothing (dict, optional): SDARTS-RS noise on the weight step's operation
            weights, e.g. ``dict(max_epsilon=0.3)``.
        fair_darts (dict, optional): FairDARTS' sigmoid weights and zero-one loss, e.g.
            ``dict(zero_one_weight=10.0)``.
        init_cfg (dict, optional): mmengine initialisation config.

    The countermeasures are described in :mod:`mmsase.models.algorithms.countermeasures`.

    Attributes:
        classifier: the network; its parameters are the weights ``w``.
        architecture (ArchitectureParams): ``alpha``, bound to every supernet block of
            ``classifier``; saved once in the state dict as ``architecture.alpha``.
    """

    def __init__(self,
                 architecture: dict,
                 unroll: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 warmup_epochs: int = 0,
                 beta_decay: Optional[dict] = None,
                 random_smoothing: Optional[dict] = None,
                 fair_darts: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        self.countermeasures = Countermeasures(warmup_epochs, beta_decay, random_smoothing,
                                               fair_darts)
        classifier_cfg = copy.deepcopy(architecture)
        if data_preprocessor is not None:
            classifier_cfg['data_preprocessor'] = data_preprocessor
        if isinstance(classifier_cfg.get('type'), str):
            classifier_cfg.setdefault('_scope_', 'mmpretrain')
        classifier = MMENGINE_MODELS.build(classifier_cfg)
        super().__init__(
            data_preprocessor=classifier.data_preprocessor, init_cfg=init_cfg)
        self.classifier = classifier
        self.architecture = ArchitectureParams(weighting=self.countermeasures.weighting,
                                               space=_search_space(self.classifier))
        num_blocks = bind_architecture(self.classifier, self.architecture)
        self.num_searchable_blocks = num_blocks
        self.architect = Architect(
            self.classifier,
            self.architecture.alpha,
            classification_loss,
            unroll=unroll)

    def train_step(self, data: Dict[str, Union[dict, tuple, list]],
                   optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        """One bi-level iteration: an ``alpha`` step, then a weight step.

        Args:
            data: ``{'weights': batch, 'architecture': batch}``, raw batches of the weight
                split and of the architecture split.
            optim_wrapper: ``OptimWrapperDict`` with keys ``'weights'`` (torch SGD for the
                unrolled step) and ``'architecture'``.

        Returns:
            dict: ``loss_arch`` (validation loss on the architecture split, at ``w'`` when
            unrolled; absent during warm-up), the regularisers' terms (``loss_beta_decay``,
            ``loss_zero_one``), ``loss_weights`` and the classifier's other logged values.

        Under ``torch.distributed`` with several processes the gradients of ``alpha`` and of
        the weights are averaged across ranks and the buffers are broadcast from rank 0, so
        every rank holds the same model after each step.
        """
        _check_train_step_inputs(data, optim_wrapper)
        progress = SearchProgress.from_message_hub() if self.countermeasures.scheduled \
            else None
        weights_batch = self.data_preprocessor(data['weights'], True)
        log_vars = {}
        if progress is None or not self.countermeasures.architecture_frozen(progress):
            architecture_batch = self.data_preprocessor(data['architecture'], True)
            log_vars.update(self._update_architecture(architecture_batch, weights_batch,
                                                      optim_wrapper, progress))
        log_vars.update(self._update_weights(weights_batch, optim_wrapper['weights'],
                                             progress))
        return log_vars

    def _update_architecture(self, architecture_batch: dict, weights_batch: dict,
                             optim_wrapper: OptimWrapperDict,
                             progress: Optional[SearchProgress] = None) -> Dict[str, Tensor]:
        """The ``alpha`` step. Leaves weights, buffers and the weight optimizer alone."""
        if self.architect.unroll:
            _check_plain_weight_step(optim_wrapper['weights'])
        alpha_grad, loss_arch = self.architect.alpha_gradient(
            architecture_batch, weights_batch,
            optim_wrapper['weights'].optimizer)
        alpha = self.architecture.alpha
        # OptimWrapper steps from a loss; this one's gradient w.r.t. alpha is alpha_grad
        # plus the regularisers' own (they depend on alpha alone).
        regularisers = self.countermeasures.regularisers(alpha, progress)
        surrogate_loss = (alpha * alpha_grad).sum() + sum(regularisers.values())
        _backward_and_step(optim_wrapper['architecture'], surrogate_loss,
                           [alpha])
        return dict(loss_arch=loss_arch,
                    **{name: term.detach() for name, term in regularisers.items()})

    def _update_weights(self, weights_batch: dict, optim_wrapper: OptimWrapper,
                        progress: Optional[SearchProgress] = None) -> Dict[str, Tensor]:
        with optim_wrapper.optim_context(self.classifier), \
                _no_grad_for(self.architecture.alpha), \
                self._smoothed_weights(progress):
            losses = self.classifier(**weights_batch, mode='loss')
        loss, log_vars = self.classifier.parse_losses(losses)
        _backward_and_step(optim_wrapper, loss, self.classifier.parameters())
        if get_world_size() > 1:
            for buffer in self.classifier.buffers():
                broadcast(buffer, src=0)
        log_vars['loss_weights'] = log_vars.pop('loss')
        return log_vars

    @contextmanager
    def _smoothed_weights(self, progress: Optional[SearchProgress]):
        """SDARTS-RS: the weight step sees the operation weights with one ``U(−ε, ε)`` draw."""
        if not self.countermeasures.random_smoothing:
            yield
            return
        alpha = self.architecture.alpha
        noise = self.countermeasures.smoothing_noise(alpha.shape, progress).to(
            device=alpha.device, dtype=alpha.dtype)
        renormalise = self.architecture.weighting == 'softmax'
        with self.architecture.transformed(
                lambda weights: smooth_weights(weights, noise, renormalise)):
            yield

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        return self.classifier.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        return self.classifier.test_step(data)

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        return self.classifier(inputs, data_samples, mode=mode)

    def derive(self) -> Dict[str, str]:
        """The current genotype: the op with the largest ``alpha`` on each edge."""
        return self.architecture.derive()


def _search_space(classifier: nn.Module):
    """The one search space of the classifier's supernet blocks."""
    spaces = {block.search_space for block in searchable_blocks(classifier)}
    if not spaces:
        raise ValueError(
            'SASESearch found no supernet block in the classifier; put one in the backbone, '
            "e.g. attention=dict(type='SASESupernet') or dict(type='mmsase.AutoLASupernet')")
    if len(spaces) > 1:
        raise ValueError('the classifier mixes supernet blocks of several search spaces '
                         f'({", ".join(sorted(s.name for s in spaces))}); one search runs one '
                         'space')
    return spaces.pop()


def _check_train_step_inputs(data, optim_wrapper) -> None:
    if not (isinstance(data, dict) and set(data) == {'weights', 'architecture'}):
        raise TypeError(
            "SASESearch.train_step takes {'weights': batch, 'architecture': batch}; "
            "use train_cfg=dict(type='mmsase.BilevelEpochBasedTrainLoop', ...)")
    if not (isinstance(optim_wrapper, OptimWrapperDict)
            and set(optim_wrapper.keys()) == {'weights', 'architecture'}):
        raise TypeError(
            'SASESearch.train_step needs OptimWrapperDict(weights=..., '
            "architecture=...); use optim_wrapper=dict(constructor="
            "'mmsase.SearchOptimWrapperConstructor', weights=..., architecture=...)")


def _check_plain_weight_step(optim_wrapper: OptimWrapper) -> None:
    """The unrolled step's virtual step is one SGD step from this batch's gradient: the
    real weight step must be that too, without clipping or accumulation."""
    clip = getattr(optim_wrapper, 'clip_grad_kwargs', None)
    accumulate = getattr(optim_wrapper, '_accumulative_counts', 1)
    if clip or accumulate != 1:
        raise ValueError(
            'the unrolled (second-order) search models the weight step as one plain SGD '
            f'step, but the weights\' optim wrapper has clip_grad={clip} and '
            f'accumulative_counts={accumulate}: remove them (clip_grad=None, '
            'accumulative_counts=1) or search first order (model.unroll=False)')


def _backward_and_step(optim_wrapper: OptimWrapper, loss: Tensor,
                       params: Iterable[nn.Parameter]) -> None:
    """``OptimWrapper.update_params`` with the gradients averaged across ranks before the
    optimizer step (what DDP would do; the bi-level step cannot run under DDP). ``params`` is
    read only when there are several ranks."""
    optim_wrapper.backward(optim_wrapper.scale_loss(loss))
    if optim_wrapper.should_update():
        average_gradients_across_ranks(params)
        optim_wrapper.step()
        optim_wrapper.zero_grad()


def average_gradients_across_ranks(params: Iterable[nn.Parameter]) -> None:
    """All-reduce-average ``.grad`` of ``params`` (a missing gradient counts as zero)."""
    if get_world_size() == 1:
        return
    params = [p for p in params if p.requires_grad]
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    flat = torch.cat([param.grad.reshape(-1) for param in params])
    all_reduce(flat, op='mean')
    offset = 0
    for param in params:
        param.grad.copy_(flat[offset:offset + param.numel()].view_as(param))
        offset += param.numel()


@contextmanager
def _no_grad_for(param: nn.Parameter):
    """Keep a backward pass from accumulating into ``param.grad`` (and from computing it)."""
    previous = param.requires_grad
    param.requires_grad_(False)
    try:
        yield
    finally:
        param.requires_grad_(previous)
