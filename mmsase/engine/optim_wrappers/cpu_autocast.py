from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmsase.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """Mixed precision on CPU: the forward runs under ``torch.autocast('cpu', bfloat16)``.

    mmengine's ``AmpOptimWrapper`` only supports accelerators. bfloat16 has float32's
    exponent range, so no loss scaling is needed.
    """

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs):
        super().__init__(*args, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
