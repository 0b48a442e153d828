"""The architecture-gradient step of DARTS (SASE spec §4), first order and unrolled.

Pure torch: works on any network whose loss depends on an architecture parameter ``alpha``
that is *not* one of the weights the weight optimizer updates.

The unrolled (second-order) gradient follows DARTS (Liu et al., 2019, eq. 7-8)::

    w'  = w - xi * (dL_train/dw (w, alpha) + momentum * m + weight_decay * w)
    v   = dL_val/dw' (w', alpha)
    eps = 0.01 / ||v||_2,    w+- = w +- eps * v
    g   = dL_val/dalpha (w', alpha)
          - xi * [dL_train/dalpha (w+, alpha) - dL_train/dalpha (w-, alpha)] / (2 eps)

where ``xi`` is the weight optimizer's current learning rate and ``m`` its momentum buffer
(zero before the first real step). ``w'`` is exactly the next torch-SGD iterate (dampening 0,
no Nesterov), so ``g`` is the finite-difference form of the exact hypergradient
``d L_val(w'(alpha), alpha) / d alpha``. The first-order gradient is ``dL_val/dalpha (w, alpha)``.

Every pass runs the network with *virtual* weight tensors and *copies* of the buffers
substituted for its own (:class:`TensorSubstitution`, a faster ``functional_call``), so the
real weights, BatchNorm running statistics (``num_batches_tracked`` included) and the optimizer
state are never written. Each pass asks autograd only for the gradients it needs and no graph
outlives its pass: the unrolled step costs four forward/backward passes (virtual step, ``w'``,
``w+``, ``w-``), the first-order step one.
"""
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .substitution import TensorSubstitution

LossFunction = Callable[[nn.Module, Any], Tensor]


class Architect:
    """Computes the gradient of the validation loss w.r.t. the architecture ``alpha``.

    Args:
        network: the network holding the weights ``w`` and the BN buffers.
        alpha: the architecture parameter (e.g. ``ArchitectureParams.alpha``), used by
            ``network`` but not updated by the weight optimizer.
        loss_fn: ``loss_fn(network, batch) -> scalar``. It must read the weights from
            ``network``'s modules (as its ``forward`` does): that is where the virtual
            weights are substituted.
        unroll: second-order (unrolled) gradient if True, first order (``xi = 0``) if False.
        finite_difference_scale: the numerator of ``eps`` (0.01 in DARTS).
    """

    def __init__(self,
                 network: nn.Module,
                 alpha: Tensor,
                 loss_fn: LossFunction,
                 unroll: bool = False,
                 finite_difference_scale: float = 0.01) -> None:
        self.network = network
        self.loss_fn = loss_fn
        self.substitution = TensorSubstitution(network)
        self.alpha = alpha
        self.unroll = unroll
        self.finite_difference_scale = finite_difference_scale

    def alpha_gradient(
        self,
        val_batch: Any,
        train_batch: Any = None,
        weight_optimizer: Optional[torch.optim.Optimizer] = None
    ) -> Tuple[Tensor, Tensor]:
        """Returns ``(gradient w.r.t. alpha, validation loss)``, both detached.

        The validation loss is taken at ``w`` (first order) or ``w'`` (unrolled). The unrolled
        step needs ``train_batch`` and the (torch SGD) ``weight_optimizer``, which is read for
        the learning rate, momentum, weight decay and momentum buffers, never modified.
        """
        if not self.unroll:
            val_loss = self._loss(val_batch)
            (alpha_grad, ) = self._grad(val_loss, [self.alpha])
            return alpha_grad, val_loss.detach()
        if train_batch is None or weight_optimizer is None:
            raise ValueError(
                'the unrolled step needs train_batch and weight_optimizer')
        return self._unrolled_alpha_gradient(val_batch, train_batch,
                                             weight_optimizer)

    def _unrolled_alpha_gradient(
            self, val_batch: Any, train_batch: Any,
            weight_optimizer: torch.optim.Optimizer) -> Tuple[Tensor, Tensor]:
        lr, sgd_weights = self._sgd_weights(weight_optimizer)
        weights = [w.weight for w in sgd_weights]

        # w' = one virtual SGD step of w on the training loss (w-gradients only):
        # w − ξ (∇w L_train + wd·w + momentum·buffer). (torch._foreach_* ops: the same
        # arithmetic, one call per list instead of a few per tensor — a supernet has ~1000.)
        train_grads = self._grad(self._loss(train_batch), weights)
        with torch.no_grad():
            # new tensors: autograd may hand out one gradient tensor for several weights
            steps = _foreach_axpy(train_grads, weights, [w.weight_decay for w in sgd_weights])
            with_buffer = [i for i, w in enumerate(sgd_weights) if w.momentum_buffer is not None]
            if with_buffer:
                _foreach_axpy([steps[i] for i in with_buffer],
                              [sgd_weights[i].momentum_buffer for i in with_buffer],
                              [sgd_weights[i].momentum for i in with_buffer], in_place=True)
            virtual_weights = list(torch._foreach_add(weights, steps, alpha=-lr))
        for w in virtual_weights:
            w.requires_grad_()
        del train_grads, steps

        val_loss = self._loss(val_batch, dict(zip(weights, virtual_weights)))
        *val_weight_grads, alpha_grad = self._grad(
            val_loss, virtual_weights + [self.alpha])
        del virtual_weights

        # d2 L_train / (dalpha dw) . v by central differences around w.
        grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(val_weight_grads)))
        if grad_norm == 0:  # L_val does not depend on w: nothing to correct
            return alpha_grad, val_loss.detach()
        eps = self.finite_difference_scale / grad_norm.item()
        alpha_grads_at = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                shifted = torch._foreach_add(weights, val_weight_grads, alpha=sign * eps)
            shifted_loss = self._loss(train_batch, dict(zip(weights, shifted)))
            alpha_grads_at.append(self._grad(shifted_loss, [self.alpha])[0])
            del shifted, shifted_loss
        hessian_vector = (alpha_grads_at[0] - alpha_grads_at[1]) / (2 * eps)
        return alpha_grad - lr * hessian_vector, val_loss.detach()

    def _loss(self, batch: Any, weights: Optional[Dict[Tensor, Tensor]] = None) -> Tensor:
        """The loss with ``{weight: substitute}`` swapped in (the real weights elsewhere) and
        fresh copies of the buffers, so the BN running statistics are left alone."""
        substitutes = {buffer: buffer.clone() for buffer in self.substitution.buffers()}
        substitutes.update(weights or {})
        with self.substitution(substitutes):
            loss = self.loss_fn(self.network, batch)
        if loss.dim() != 0:
            raise ValueError(
                f'loss_fn must return a scalar, got shape {tuple(loss.shape)}')
        return loss

    @staticmethod
    def _grad(loss: Tensor, inputs: List[Tensor]) -> List[Tensor]:
        """``torch.autograd.grad``, with zeros for inputs the loss does not depend on."""
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        return [
            torch.zeros_like(x) if g is None else g
            for x, g in zip(inputs, grads)
        ]

    def _sgd_weights(self, optimizer: torch.optim.Optimizer
                     ) -> Tuple[float, List['_SGDWeight']]:
        """The learning rate and the SGD settings of every network weight the optimizer
        updates. Weights it does not update (not in it, or frozen: ``requires_grad=False``)
        are constants of the virtual step."""
        if not isinstance(optimizer, torch.optim.SGD):
            raise ValueError('the unrolled step takes the virtual step of torch.optim.SGD, '
                             f'but the weight optimizer is {type(optimizer).__name__}: use '
                             'SGD, or the first-order search (unroll=False)')
        sgd_weights, learning_rates = [], set()
        for group in optimizer.param_groups:
            if group.get('nesterov', False) or group.get('dampening', 0) or \
                    group.get('maximize', False):
                raise ValueError('the unrolled step implements plain momentum SGD (no '
                                 'Nesterov, dampening 0, maximize=False), got nesterov='
                                 f"{group.get('nesterov')}, dampening={group.get('dampening')}"
                                 f", maximize={group.get('maximize')}")
            for param in group['params']:
                if param is self.alpha:
                    raise ValueError(
                        'alpha must not be updated by the weight optimizer')
                if not param.requires_grad or not self.substitution.holds(param):
                    continue
                learning_rates.add(group['lr'])
                sgd_weights.append(_SGDWeight(
                    param, group.get('momentum', 0),
                    optimizer.state.get(param, {}).get('momentum_buffer'),
                    group.get('weight_decay', 0)))
        if len(learning_rates) != 1:
            raise ValueError('the unrolled step needs exactly one learning rate '
                             f'for the network weights, got {sorted(learning_rates)}')
        return learning_rates.pop(), sgd_weights


class _SGDWeight(NamedTuple):
    weight: nn.Parameter
    momentum: float
    momentum_buffer: Optional[Tensor]  # None before the weight's first real step
    weight_decay: float


def _foreach_axpy(ys: List[Tensor], xs: List[Tensor], scales: List[float],
                  in_place: bool = False) -> List[Tensor]:
    """``y + s · x`` for each ``(y, x, s)``, as new tensors or written into ``ys``: one
    foreach call when all ``scales`` are equal (the usual single parameter group)."""
    if len(set(scales)) > 1:
        xs, scale = torch._foreach_mul(xs, scales), 1.0
    else:
        scale = scales[0] if scales else 0.0
    if in_place:
        torch._foreach_add_(ys, xs, alpha=scale)
        return ys
    return list(torch._foreach_add(ys, xs, alpha=scale))
