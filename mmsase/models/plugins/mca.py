"""MCA: Moment Channel Attention.

Paper: `MCA: Moment Channel Attention Networks` (AAAI 2024; the repository's README cites an
unrelated paper, so its authors are not named here).
Authors' code: CSDLLab/MCA @a4626b3d, ``moment.py`` — the only code file: the module, no
network, no placement, no training script.

Shapes: ``x (B, C, H, W) → y (B, C, H, W)``. Two statistics per channel, over ``H·W``, form a
2-channel signal of length ``C`` ``(B, 2, C)``; a 1-D conv across the channels fuses them::

    moment='std'  (MomentAttention_v1, Moment_efficient):  m = [mean_hw x; std_hw x]
    moment='skew' (MomentAttention_v2, Moment_Strong):     m = [mean_hw x; skew_hw x]
        std  = sqrt(mean((x − μ)²))                          biased, no eps
        skew = mean((x − μ)³) / (std³ + 1e-5)
    y = x ⊙ σ(Conv1d(2 → 1, k, padding k // 2, bias)(m))

Exact to the authors' code, including where it is fragile: the std has **no eps**, so where a
channel is constant over ``H·W`` (e.g. ``H·W = 1``) the std is 0 and its derivative
``(x − μ)/(n·std)`` is ``0/0``; the authors leave it so and so does this block. PyTorch's
``std`` backward then gives a zero gradient through the std (it masks ``std == 0``), so
training does not produce NaN; a std that is tiny but not zero has a large gradient.

The code comment says "for Moment_Strong, k = 7", but ``ChannelAttention`` hard-codes
``k = 3`` for both variants, so the default here is 3 for both; ``kernel_size=7`` gives the
commented variant. Init: PyTorch's defaults (the authors set none).

Placement is not in the public code; this block assumes SE's: after the last BN of the residual
branch, before the identity addition, in every block.

The statistics are computed in float32 (float64 for float64 inputs) with autocast off: ``x³``
of float16 activations overflows. The gate is cast back to the input's dtype.

Parameters: ``2k + 1`` — 7 for k = 3 (15 for k = 7); +112 for a ResNet-50 (16 blocks, k = 3).
"""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels, compute_dtype
from .base import AttentionBlock

MOMENTS = ('std', 'skew')


@MODELS.register_module()
class MCA(AttentionBlock):
    """``y = x ⊙ σ(Conv1d_k([mean_hw x; std_hw x or skew_hw x]))`` across the channels.

    Args:
        in_channels: channels ``C`` (the block's parameters do not depend on it).
        moment: ``'std'`` (MomentAttention_v1) or ``'skew'`` (MomentAttention_v2).
        kernel_size: ``k``, odd; 3 in the authors' code for both moments.
    """

    _abbr_ = 'mca'
    #: added to ``std³`` in the skewness's denominator (authors' code).
    skew_eps = 1e-5

    def __init__(self, in_channels: int, moment: str = 'std', kernel_size: int = 3):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        if moment not in MOMENTS:
            raise ValueError(f'moment must be one of {MOMENTS}, got {moment!r}')
        self.moment = moment
        if (isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1
                or kernel_size % 2 == 0):
            raise ValueError(f'kernel_size must be an odd positive int, got {kernel_size!r}')
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(2, 1, kernel_size, padding=kernel_size // 2, bias=True)

    def init_weights(self) -> None:
        """PyTorch's default init of the conv (authors' init), redrawn."""
        self.conv.reset_parameters()

    def moments(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) → (B, 2, C)``: ``[mean; std or skew]`` over ``H·W``, in float32 or
        better with autocast off; returned in float32 under autocast, else in ``x``'s dtype."""
        with torch.autocast(x.device.type, enabled=False):
            xf = x.to(compute_dtype(x.dtype))
            mean = xf.mean((2, 3), keepdim=True)
            std = xf.std((2, 3), unbiased=False, keepdim=True)
            if self.moment == 'std':
                second = std
            else:
                second = (xf - mean).pow(3).mean((2, 3), keepdim=True) / (std**3 + self.skew_eps)
            m = torch.cat((mean, second), 2).flatten(2).transpose(1, 2)
        return m if torch.is_autocast_enabled(x.device.type) else m.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        a = torch.sigmoid(self.conv(self.moments(x)))  # (B, 1, C)
        return x * a.transpose(1, 2).unsqueeze(-1).to(x.dtype)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, moment={self.moment!r}, '
                f'kernel_size={self.kernel_size}')
