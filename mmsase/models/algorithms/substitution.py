"""Run a network with some of its parameters and buffers replaced by other tensors.

What :func:`torch.func.functional_call` does, for a network whose set of tensors rarely
changes: the places where each tensor is registered are looked up once, so a substitution
costs one dictionary write per place. (``functional_call`` resolves every name anew on each
call: ~20 ms for the ~1,300 tensors of the ResNet-20 supernet, paid by each of the unrolled
step's four passes; a look-up of all places costs ~6 ms.)
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

from torch import Tensor, nn
from torch.nn.modules import module as torch_module

_Slot = Tuple[dict, str]  # (a module's _parameters or _buffers, key)


class _Registrations:
    """How many parameters, buffers and submodules have been registered on any module of
    this process (torch's global registration hooks, installed on first use): a look-up
    made at an older count may miss a registration, e.g. a weight tied after it."""
    count = 0
    _installed = False

    @classmethod
    def install(cls) -> None:
        if not cls._installed:
            torch_module.register_module_parameter_registration_hook(cls._seen)
            torch_module.register_module_buffer_registration_hook(cls._seen)
            torch_module.register_module_module_registration_hook(cls._seen)
            cls._installed = True

    @classmethod
    def _seen(cls, module: nn.Module, name: str, value) -> None:
        cls.count += 1


class TensorSubstitution:
    """Swaps tensors into ``network`` in place of its parameters and buffers.

    Args:
        network: the network. Where its tensors are registered is looked up on construction
            and again when a substitution finds that, since, a parameter, buffer or module
            was registered anywhere (``setattr``, ``register_*``, ``add_module``) or a
            recorded registration was overwritten in place.

    Example::

        substitution = TensorSubstitution(net)
        with substitution({net.fc.weight: virtual_weight}):
            loss = net(x).sum()   # uses virtual_weight; net.fc.weight is back afterwards
    """

    def __init__(self, network: nn.Module) -> None:
        _Registrations.install()
        self.network = network
        self._index()

    def _index(self) -> None:
        self._indexed_at = _Registrations.count
        self._slots: Dict[int, List[_Slot]] = {}
        self._buffer_slots: List[_Slot] = []
        for module in self.network.modules():
            for registry in (module._parameters, module._buffers):
                for key, tensor in registry.items():
                    if tensor is not None:  # a tied tensor has one slot per module
                        self._slots.setdefault(id(tensor), []).append((registry, key))
                        if registry is module._buffers:
                            self._buffer_slots.append((registry, key))

    def _refresh(self) -> None:
        if self._indexed_at != _Registrations.count:
            self._index()

    def buffers(self) -> List[Tensor]:
        """The network's buffers, each once: ``list(network.buffers())`` without walking the
        module tree (~4 ms for the supernet)."""
        self._refresh()
        current = {}
        for registry, key in self._buffer_slots:
            tensor = registry.get(key)
            if tensor is not None:
                current[id(tensor)] = tensor
        return list(current.values())

    def holds(self, tensor: Tensor) -> bool:
        """Whether ``tensor`` is a parameter or buffer of the network. (A tensor it does not
        hold costs a new look-up of all places, in case it was written there directly.)"""
        self._refresh()
        try:
            self._slots_of(tensor)
        except KeyError:
            return False
        return True

    def _slots_of(self, tensor: Tensor) -> List[_Slot]:
        slots = self._slots.get(id(tensor))
        if slots is None or any(registry.get(key) is not tensor for registry, key in slots):
            self._index()  # written to ``_parameters``/``_buffers`` directly since
            slots = self._slots.get(id(tensor))
        if slots is None:
            raise KeyError('the tensor to substitute is not a parameter or buffer of the '
                           f'network (shape {tuple(tensor.shape)})')
        return slots

    @contextmanager
    def __call__(self, substitutes: Dict[Tensor, Tensor]) -> Iterator[None]:
        """Within the context, every registration of a key of ``substitutes`` (a parameter
        or buffer of the network) holds its value instead."""
        self._refresh()
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
