"""Helpers shared by the model tests (import ``single_thread`` to use the fixture)."""
import pytest
import torch
import torch.nn as nn


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give ``module`` non-trivial weights and BN running statistics, reproducibly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module


def bn_eval(v: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Eval-mode batch norm of a tensor whose BN channel is broadcast, written out."""
    return (v - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


class Recorder:
    """Records the inputs and outputs of the modules it hooks, by name (``inputs[name]``,
    ``outputs[name]``: detached copies from the last forward); ``remove()`` unhooks."""

    def __init__(self, modules: dict):
        self.inputs, self.outputs = {}, {}
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in modules.items()]

    def _hook(self, name):
        def hook(module, args, output):
            self.inputs[name] = args[0].detach().clone()
            self.outputs[name] = output.detach().clone()
        return hook

    def remove(self):
        for handle in self.handles:
            handle.remove()


@pytest.fixture(autouse=True, scope='module')
def single_thread():
    """Run a module's tests on one intra-op thread: they use tiny tensors, for which OpenMP
    threads only add synchronisation, and on a shared machine that costs more than it gains."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
