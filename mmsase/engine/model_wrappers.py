"""Data-parallel wrapper for bi-level searches (``SASESearch``)."""
from typing import Any, Dict

from mmengine.dist import broadcast, get_world_size
from torch import nn

from mmsase.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class SearchDataParallel(nn.Module):
    """Distributed data parallelism for a model that synchronises its own gradients.

    mmengine's ``MMDistributedDataParallel.train_step`` runs one forward/backward through
    DDP, which does not fit a bi-level step (an architecture step, then a weight step). This
    wrapper only makes every rank *start* from rank 0's state; ``SASESearch.train_step``
    averages the gradients of each step across ranks itself. Use it with::

        model_wrapper_cfg = dict(type='mmsase.SearchDataParallel')

    The state (parameters and buffers) is broadcast when wrapping, and again before the
    first ``train_step``, because ``Runner.train`` initialises weights and loads checkpoints
    after wrapping.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self._synchronised = False
        self.broadcast_state()

    def broadcast_state(self, src: int = 0) -> None:
        """Copy rank ``src``'s parameters and buffers to every rank."""
        if get_world_size() == 1:
            return
        for tensor in list(self.module.parameters()) + list(self.module.buffers()):
            broadcast(tensor.data, src=src)

    def train_step(self, data: Any, optim_wrapper) -> Dict[str, Any]:
        if not self._synchronised:
            self.broadcast_state()
            self._synchronised = True
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data: Any) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        return self.module.test_step(data)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
