"""Small helpers every block of the package uses: the SASE search space's operations and the
attention zoo of :mod:`mmsase.models.plugins` alike.

* :func:`check_channels` — the one check of a block's ``channels`` argument;
* :func:`compute_dtype` — the precision statistics are computed in (float32 or better: see
  :mod:`mmsase.models.search_space.statistics`).

The module imports nothing from the package, so any block can import it without pulling in the
search space.
"""
import torch


def check_channels(value, name: str = 'channels') -> int:
    """Return ``value`` if it is a positive ``int``; raise a ``ValueError`` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}')
    return value


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype statistics are computed in: float32 for half/bfloat16, else ``dtype``."""
    return torch.promote_types(dtype, torch.float32)
