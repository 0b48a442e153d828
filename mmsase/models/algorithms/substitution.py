"""Run a network with some of its parameters and buffers replaced by other tensors.

What :func:`torch.func.functional_call` does, for a network whose set of tensors is fixed:
the places where each tensor is registered are looked up once, so a substitution costs one
dictionary write per place. (``functional_call`` resolves every name anew on each call:
~20 ms for the ~1,300 tensors of the ResNet-20 supernet, paid by each of the unrolled
step's four passes.)
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

from torch import Tensor, nn

_Slot = Tuple[dict, str]  # (a module's _parameters or _buffers, key)


class TensorSubstitution:
    """Swaps tensors into ``network`` in place of its parameters and buffers.

    Args:
        network: the network. Where its tensors are registered is looked up on construction
            and again whenever a substitution finds the network changed since.

    Example::

        substitution = TensorSubstitution(net)
        with substitution({net.fc.weight: virtual_weight}):
            loss = net(x).sum()   # uses virtual_weight; net.fc.weight is back afterwards
    """

    def __init__(self, network: nn.Module) -> None:
        self.network = network
        self._index()

    def _index(self) -> None:
        self._slots: Dict[int, List[_Slot]] = {}
        for module in self.network.modules():
            for registry in (module._parameters, module._buffers):
                for key, tensor in registry.items():
                    if tensor is not None:  # a tied tensor has one slot per module
                        self._slots.setdefault(id(tensor), []).append((registry, key))

    def _slots_of(self, tensor: Tensor) -> List[_Slot]:
        slots = self._slots.get(id(tensor))
        if slots is None or any(registry.get(key) is not tensor for registry, key in slots):
            self._index()  # tensors were added or replaced since the last look-up
            slots = self._slots.get(id(tensor))
        if slots is None:
            raise KeyError('the tensor to substitute is not a parameter or buffer of the '
                           f'network (shape {tuple(tensor.shape)})')
        return slots

    @contextmanager
    def __call__(self, substitutes: Dict[Tensor, Tensor]) -> Iterator[None]:
        """Within the context, every registration of a key of ``substitutes`` (a parameter
        or buffer of the network) holds its value instead."""
        replaced: List[Tuple[_Slot, Tensor]] = []
        try:
            for original, substitute in substitutes.items():
                for registry, key in self._slots_of(original):
                    replaced.append(((registry, key), registry[key]))
                    registry[key] = substitute
            yield
        finally:
            for (registry, key), original in reversed(replaced):
                registry[key] = original
