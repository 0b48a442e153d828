"""Model size and FLOPs, as tools/analysis/benchmark.py and the comparison tools report them.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix
products only, not element-wise work (pooling, gating, normalisation).
"""


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn()`` (no arguments)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()
