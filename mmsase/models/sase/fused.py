"""Fused CPU inference of the fixed SASE block with the paper genotype (spec §1, §3).

The paper genotype (``cs=gap_gmp, ce1=fc, ce2=affine, ss1=gap, ss2=l4, se=conv_3x3x2``)
needs five full-size quantities of ``x (B, C, H, W)``::

    mean_hw x, max_hw x   (cs)      → z → m1 = ce1(z), m2 = ce2(z)
    mean_c x              (ss1)     → u1
    mean_c (x ⊙ m2)⁴      (ss2)     → u2 → h = fuse(u1, u2) → ms = se(h)
    x ⊙ (m1 + ms) / 2     (output)

``u2`` needs ``m2``, which needs the channel statistics of all of ``x``; the output needs
``ms``, which needs ``u2``. So three passes over ``x`` are the minimum, and that is what the
C++ extension (``csrc/sase_fused.cpp``) does:

* **pass A** — ``mean_hw x``, ``max_hw x`` (per ``(b, c)``) *and* ``mean_c x`` (per
  ``(b, h, w)``) in one sweep: rows of ``x`` are streamed once, each reduced to its sum/max
  while being added into a cache-resident per-position accumulator;
* **pass B** — ``(mean_c (m2 ⊙ x)⁴ + 1e-6)^(1/4)`` in one sweep, ``x ⊙ m2`` never formed;
* **pass C** — ``y = x ⊙ (m1 + ms) / 2`` in one sweep, no full-size temporary.

(SE needs two: the mean, then the product.) The channel maths between the passes — the
``gap_gmp`` fusion, the FC, the affine on ``(B, C)`` — runs in torch through the block's own
modules. The spatial maths on the ``(B, 1, H, W)`` maps — the 2→1 fusion with its BN (eval
statistics), ``conv_3x3x2`` — is one more C++ call (``spatial_tail``): tiny work, but as ten
torch calls it cost more than a pass over ``x`` (oneDNN sets up each one-channel convolution
anew, ~0.2 ms each).

The extension is compiled on first use with :func:`torch.utils.cpp_extension.load` (cached
in ``~/.cache/torch_extensions``, or ``$TORCH_EXTENSIONS_DIR``). :func:`fused_forward` is
used by :meth:`SASE.forward <mmsase.models.sase.SASE.forward>` only when
:func:`can_fuse` holds — eval mode, autograd off, the paper genotype, a contiguous float32
CPU input, no autocast, no tensor subclass or dispatch mode — and otherwise, or if the
extension cannot be built (one warning), the eager path runs. ``MMSASE_NO_FUSED=1`` forces
the eager path.
"""
import os
from typing import Optional

import torch
from torch import Tensor

from ...utils.cpp_extension import DISABLE_ENV  # noqa: F401 (re-exported)
from ...utils.cpp_extension import LazyExtension, dispatch_mode_active
from ...utils.cpp_extension import kernels_disabled as fused_disabled
from .genotype import PAPER_GENOTYPE

#: The C++ source of the three passes, compiled on first use.
EXTENSION = LazyExtension(
    os.path.join(os.path.dirname(__file__), 'csrc', 'sase_fused.cpp'), 'mmsase_sase_fused',
    'fused SASE extension', logger_name=__name__)

_PAPER = dict(PAPER_GENOTYPE)


def load_extension(verbose: bool = False):
    """The compiled extension, building it on the first call; ``None`` if that fails
    (logged once, not retried in this process)."""
    return EXTENSION.load(verbose)


def extension_available() -> bool:
    """Whether the extension is built or can be built (builds it if needed)."""
    return load_extension() is not None


def can_fuse(block, x: Tensor) -> bool:
    """Whether :func:`fused_forward` may run ``block`` on ``x``, without building anything.

    Requires: ``MMSASE_NO_FUSED`` unset, ``block`` in eval mode with the paper genotype,
    autograd off (``torch.no_grad`` / ``torch.inference_mode``), no CPU autocast, and ``x`` a
    plain (not subclassed), non-empty, contiguous NCHW float32 CPU tensor, with no
    ``TorchDispatchMode`` (e.g. a FLOP counter) active — the kernels read raw memory, which
    such modes would not see.
    """
    return (not block.training and not torch.is_grad_enabled() and type(x) is Tensor
            and x.device.type == 'cpu' and x.dtype == torch.float32 and x.dim() == 4
            and x.numel() > 0 and x.is_contiguous() and block.genotype == _PAPER
            and not torch.is_autocast_enabled('cpu') and not dispatch_mode_active()
            and not fused_disabled())


def fused_forward(block, x: Tensor, extension=None) -> Tensor:
    """``block(x)`` through the three fused passes (see the module docstring).

    ``block`` is a :class:`~mmsase.models.sase.SASE` with the paper genotype; the caller
    checks :func:`can_fuse`. ``extension`` defaults to :func:`load_extension`'s.
    """
    ext = load_extension() if extension is None else extension
    block.check_input(x)
    b, c = x.shape[:2]
    e = block.edges
    # pass A: the statistics of x alone
    mean_hw, max_hw, u1 = ext.pass_a(x)
    z = e.cs.head(mean_hw.view(b, c, 1, 1), max_hw.view(b, c, 1, 1))  # gap_gmp fusion
    m1 = e.ce1(z)
    m2 = e.ce2(z)
    # pass B: ss2 = l4 over channels of x ⊙ m2
    u2 = ext.pass_b(x, m2)
    ms = _spatial_tail(block, u1, u2, ext)
    # pass C: the output
    return ext.pass_c(x, m1, ms)


def _spatial_tail(block, u1: Tensor, u2: Tensor, ext) -> Tensor:
    """``ms = se(fuse(u1, u2))`` on the ``(B, 1, H, W)`` maps: in one C++ call when the fusion's
    BN has running statistics and an affine and all these parameters are contiguous float32
    CPU tensors (the usual case), else with the modules."""
    bn = block.fuse.bn
    conv1, conv2 = block.edges.se.convs
    params = (block.fuse.conv.weight, block.fuse.conv.bias, bn.running_mean, bn.running_var,
              bn.weight, bn.bias, conv1.weight, conv1.bias, conv2.weight, conv2.bias)
    if any(p is None or p.dtype != torch.float32 or p.device.type != 'cpu'
           or not p.is_contiguous() for p in params):
        return block.edges.se(block.fuse(u1, u2))
    w, b, mean, var, gamma, beta, k1, b1, k2, b2 = params
    return ext.spatial_tail(u1, u2, w, b, mean, var, gamma, beta, bn.eps, k1, b1, k2, b2)


def maybe_fused_forward(block, x: Tensor) -> Optional[Tensor]:
    """``fused_forward(block, x)`` if :func:`can_fuse` and the extension builds, else ``None``
    (the caller then runs the eager path)."""
    if not can_fuse(block, x):
        return None
    ext = load_extension()
    if ext is None:
        return None
    return fused_forward(block, x, ext)
