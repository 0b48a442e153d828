"""Moments of a feature map as autograd functions with hand-written gradients.

:class:`CentralMoments`, :class:`FourthPowerMean`, :class:`ChannelFourthPowerMean` compute the
same values as the plain formulas, with a few passes over the map in the backward pass instead
of a dozen (tested by gradcheck). :class:`~mmsase.models.search_space.statistics.AxisMoments`
calls them on its lazy (per-moment) path.
"""
from typing import Tuple

import torch
from torch import Tensor


class CentralMoments(torch.autograd.Function):
    """``(mean, biased variance, third central moment)`` of ``x`` over ``dim`` (kept).

    Autograd through ``c = x − μ``, ``c²``, ``c³`` writes and reads about a dozen full-size
    tensors; the analytic gradient needs three passes::

        ∂mean/∂x = 1/n,   ∂var/∂x = 2c/n,   ∂third/∂x = 3(c² − var)/n

    so ``∂L/∂x = a + c·(b + c·d)`` with small broadcast ``a, b, d``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dim: Tuple[int, ...]):
        n = _numel(x, dim)
        mean = x.mean(dim, keepdim=True)
        c = x - mean
        c2 = c * c
        var = c2.mean(dim, keepdim=True)
        third = c2.mul_(c).mean(dim, keepdim=True)
        ctx.save_for_backward(c, var)
        ctx.n = n
        return mean, var, third

    @staticmethod
    def backward(ctx, g_mean, g_var, g_third):
        c, var = ctx.saved_tensors
        n = ctx.n
        zero = torch.zeros_like(var)
        g_mean = zero if g_mean is None else g_mean
        g_var = zero if g_var is None else g_var
        g_third = zero if g_third is None else g_third
        a = (g_mean - 3 * g_third * var) / n
        grad = torch.addcmul(g_var * (2 / n), c, g_third * (3 / n))
        return grad.mul_(c).add_(a), None


class FourthPowerMean(torch.autograd.Function):
    """``mean(x⁴)`` over ``dim`` (kept), with the gradient ``4x³/n`` computed in place."""

    @staticmethod
    def forward(ctx, x: Tensor, dim: Tuple[int, ...]):
        ctx.save_for_backward(x)
        ctx.n = _numel(x, dim)
        return (x * x).square_().mean(dim, keepdim=True)

    @staticmethod
    def backward(ctx, g):
        (x, ) = ctx.saved_tensors
        return (x * x).mul_(x).mul_(g * (4 / ctx.n)), None


class ChannelFourthPowerMean(torch.autograd.Function):
    """``mean_c(w_c · x_c⁴)`` for ``x (B, C, N)`` and ``w (B, 1, C)`` → ``(B, 1, N)``: one
    matrix product forward; the gradient ``4 w_c x_c³ g / C`` formed in place."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor):
        ctx.save_for_backward(x, w)
        return torch.bmm(w / x.shape[1], (x * x).square_())

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        c = x.shape[1]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = (x * x).mul_(x).mul_(w.transpose(1, 2) * (4 / c)).mul_(g)
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(g, (x * x).square_().transpose(1, 2)) / c
        return grad_x, grad_w


def _numel(x: Tensor, dim: Tuple[int, ...]) -> int:
    n = 1
    for d in dim:
        n *= x.shape[d]
    return n
