"""Connection codes of EAN: which residual blocks apply their stage's shared attention module.

EAN (Efficient Attention Network, AAAI; authors' code gbup-group/EAN-efficient-attention-network)
shares one attention module per stage and searches *where* to plug it. A connection code has
one bit per residual block, grouped by stage; bit 1 = the block applies its stage's module after
its last BN, before the identity addition.

Forms accepted by :meth:`ConnectionCode.parse` (ResNet-50, ``stage_blocks = (3, 4, 6, 3)``):

* per-stage integers, the authors' form: ``(4, 11, 19, 3)``. Each integer is written in binary,
  left-padded with zeros to its stage's block count, and the **leftmost bit is the first block**
  (``4`` in a 3-block stage = ``'100'``: only ``layer1.0`` plugged). All-plugged R50 =
  ``(7, 15, 63, 7)``.
* one bit string, leftmost = first block of the first stage: ``'1001011010011011'``, optionally
  with separators between the stages (``'100-1011-010011-011'``; ``-``, ``_``, ``|``, ``,``,
  ``/``, ``.`` or spaces), which are then checked against the stages;
* per-stage bit strings ``('100', '1011', '010011', '011')`` or 0/1 sequences;
* a ``dict`` (a JSON file's content) or the path of a JSON file, written by :meth:`save`:
  ``{"code": <any form above>, "stage_blocks": [3, 4, 6, 3], ...}``;
* a :class:`ConnectionCode`.

A code is checked against the network's ``stage_blocks``: a wrong length, an integer too large
for its stage or a character other than 0/1 is a ``ValueError`` that says what was expected.
"""
import json
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mmsase.utils.atomic_io import atomic_write

_SEPARATORS = re.compile(r'[-_|,/.\s]+')
_CODE_TEXT = re.compile(r'[01\-_|,/.\s]*')


def _stage_blocks(stage_blocks) -> Optional[Tuple[int, ...]]:
    if stage_blocks is None:
        return None
    blocks = tuple(int(n) for n in stage_blocks)
    if not blocks or any(n < 1 for n in blocks):
        raise ValueError(f'stage_blocks must be positive block counts, got {stage_blocks!r}')
    return blocks


def _describe(stage_blocks: Tuple[int, ...]) -> str:
    return (f'{sum(stage_blocks)} bits, one per residual block, '
            f'{"+".join(map(str, stage_blocks))} over {len(stage_blocks)} stages')


@dataclass(frozen=True)
class ConnectionCode:
    """One bit per residual block, grouped by stage (``bits[stage][block]``, block 0 first).

    Build one with :meth:`parse` (any form of the module docstring), :meth:`all_plugged`,
    :meth:`none_plugged`, :meth:`random` or :meth:`load`.
    """

    bits: Tuple[Tuple[int, ...], ...]

    def __post_init__(self):
        bits = tuple(tuple(int(b) for b in stage) for stage in self.bits)
        if not bits or any(not stage for stage in bits):
            raise ValueError(f'a connection code needs at least one block per stage, got '
                             f'{self.bits!r}')
        if any(b not in (0, 1) for stage in bits for b in stage):
            raise ValueError(f'connection code bits must be 0 or 1, got {self.bits!r}')
        object.__setattr__(self, 'bits', bits)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def parse(cls, code: Any, stage_blocks: Optional[Sequence[int]] = None) -> 'ConnectionCode':
        """A code in any accepted form, checked against ``stage_blocks`` (the residual blocks
        of each stage) when given. Integers and an unseparated bit string need
        ``stage_blocks`` (or a JSON file that records them)."""
        blocks = _stage_blocks(stage_blocks)
        if isinstance(code, ConnectionCode):
            parsed = code
        elif isinstance(code, os.PathLike) or (isinstance(code, str) and _is_path(code)):
            return cls.load(code, blocks)
        elif isinstance(code, dict):
            parsed = cls._from_dict(code, blocks)
        elif isinstance(code, str):
            parsed = cls._from_string(code, blocks)
        elif isinstance(code, (list, tuple)):
            parsed = cls._from_sequence(code, blocks)
        else:
            raise TypeError(f'a connection code is per-stage integers such as (4, 11, 19, 3), '
                            f"a bit string such as '1001011010011011', per-stage bit strings, "
                            f'a dict or a JSON file; got {type(code).__name__} {code!r}')
        return parsed.check(blocks) if blocks is not None else parsed

    @classmethod
    def _from_string(cls, code: str, blocks) -> 'ConnectionCode':
        text = code.strip()
        groups = [g for g in _SEPARATORS.split(text) if g]
        bad = sorted(set(''.join(groups)) - {'0', '1'})
        if bad:
            raise ValueError(f'connection code {code!r} has characters {bad} other than 0/1 '
                             f'(and separators between stages)')
        if len(groups) > 1:
            if blocks is not None and len(groups) != len(blocks):
                raise ValueError(f'connection code {code!r} has {len(groups)} groups; the '
                                 f'network has {len(blocks)} stages: expected '
                                 f'{_describe(blocks)}')
            return cls._from_sequence(groups, blocks)
        flat = groups[0] if groups else ''
        if blocks is None:
            raise ValueError(f'connection code {code!r}: without separators between the '
                             f'stages, the stage block counts are needed to split it')
        if len(flat) != sum(blocks):
            raise ValueError(f'connection code {code!r} has {len(flat)} bits; expected '
                             f'{_describe(blocks)}')
        bits, start = [], 0
        for n in blocks:
            bits.append(tuple(int(c) for c in flat[start:start + n]))
            start += n
        return cls(tuple(bits))

    @classmethod
    def _from_sequence(cls, code: Sequence, blocks) -> 'ConnectionCode':
        if blocks is not None and len(code) != len(blocks):
            raise ValueError(f'connection code {code!r} has {len(code)} entries; expected one '
                             f'per stage ({len(blocks)} stages): {_describe(blocks)}')
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in code):
            return cls._from_integers(code, blocks)
        bits = []
        for stage, value in enumerate(code):
            if isinstance(value, str):
                if set(value) - {'0', '1'} or not value:
                    raise ValueError(f'stage {stage + 1} of connection code {code!r} is '
                                     f'{value!r}: expected a string of 0/1')
                value = [int(c) for c in value]
            elif not isinstance(value, (list, tuple)) or \
                    any(b not in (0, 1, True, False) for b in value):
                raise ValueError(f'stage {stage + 1} of connection code {code!r} is {value!r}: '
                                 f'expected an integer (all stages), a 0/1 string or 0/1 '
                                 f'flags')
            bits.append(tuple(int(b) for b in value))
        return cls(tuple(bits))

    @classmethod
    def _from_integers(cls, code: Sequence[int], blocks) -> 'ConnectionCode':
        if blocks is None:
            raise ValueError(f'connection code {tuple(code)!r}: per-stage integers need the '
                             f'stage block counts (their binary width)')
        bits = []
        for stage, (value, n) in enumerate(zip(code, blocks)):
            value = int(value)
            if not 0 <= value < 2**n:
                raise ValueError(f'stage {stage + 1} of connection code {tuple(code)!r} is '
                                 f'{value}: its {n} blocks take 0..{2**n - 1} (all plugged = '
                                 f'{2**n - 1})')
            bits.append(tuple(int(c) for c in format(value, f'0{n}b')))  # leftmost = block 0
        return cls(tuple(bits))

    @classmethod
    def _from_dict(cls, data: dict, blocks) -> 'ConnectionCode':
        if 'code' not in data:
            raise ValueError(f'a connection code file needs a "code" key, got keys '
                             f'{sorted(data)}')
        recorded = _stage_blocks(data.get('stage_blocks'))
        if recorded is not None and blocks is not None and recorded != blocks:
            raise ValueError(f'the connection code was written for stage_blocks {recorded}; '
                             f'this network has {blocks}')
        return cls.parse(data['code'], recorded if recorded is not None else blocks)

    @classmethod
    def all_plugged(cls, stage_blocks: Sequence[int]) -> 'ConnectionCode':
        """Every block plugged (R50: ``(7, 15, 63, 7)``)."""
        return cls(tuple((1, ) * n for n in _stage_blocks(stage_blocks)))

    @classmethod
    def none_plugged(cls, stage_blocks: Sequence[int]) -> 'ConnectionCode':
        """No block plugged (``(0, 0, 0, 0)``, the authors' supernet validation code)."""
        return cls(tuple((0, ) * n for n in _stage_blocks(stage_blocks)))

    @classmethod
    def random(cls, stage_blocks: Sequence[int], generator: Optional[torch.Generator] = None,
               p: float = 0.5) -> 'ConnectionCode':
        """Every block plugged independently with probability ``p`` (the authors' supernet:
        i.i.d. Bernoulli(0.5) bits, i.e. a uniformly random code), drawn from ``generator``
        (block order: stage by stage, first block first)."""
        blocks = _stage_blocks(stage_blocks)
        flat = (torch.rand(sum(blocks), generator=generator) < p).tolist()
        bits, start = [], 0
        for n in blocks:
            bits.append(tuple(int(b) for b in flat[start:start + n]))
            start += n
        return cls(tuple(bits))

    # -- checks and views -------------------------------------------------------------------
    def check(self, stage_blocks: Sequence[int]) -> 'ConnectionCode':
        """``self`` if it fits a network of ``stage_blocks``; else a ``ValueError``."""
        blocks = _stage_blocks(stage_blocks)
        if self.stage_blocks != blocks:
            raise ValueError(f'connection code {self.to_string("-")} has stages of '
                             f'{self.stage_blocks} blocks; expected {_describe(blocks)}')
        return self

    @property
    def stage_blocks(self) -> Tuple[int, ...]:
        return tuple(len(stage) for stage in self.bits)

    @property
    def flat(self) -> Tuple[int, ...]:
        """All bits, stage by stage, first block first."""
        return tuple(b for stage in self.bits for b in stage)

    @property
    def integers(self) -> Tuple[int, ...]:
        """The authors' form: one integer per stage, leftmost (most significant) = block 0."""
        return tuple(int(''.join(map(str, stage)), 2) for stage in self.bits)

    def to_string(self, separator: str = '') -> str:
        """``'1001011010011011'``, or with ``separator`` between the stages."""
        return separator.join(''.join(map(str, stage)) for stage in self.bits)

    def __str__(self) -> str:
        return self.to_string()

    def stage_strings(self) -> Tuple[str, ...]:
        """Per-stage bit strings, the form of the backbones' ``attention_blocks``."""
        return tuple(''.join(map(str, stage)) for stage in self.bits)

    @property
    def num_blocks(self) -> int:
        return sum(self.stage_blocks)

    @property
    def num_plugged(self) -> int:
        return sum(self.flat)

    @property
    def fraction_unplugged(self) -> float:
        """Fraction of blocks whose bit is 0 (the authors' reward bonus is 2× this)."""
        return 1.0 - self.num_plugged / self.num_blocks

    # -- files ------------------------------------------------------------------------------
    def to_dict(self, **metadata) -> dict:
        return dict(code=self.to_string(), integers=list(self.integers),
                    stage_blocks=list(self.stage_blocks), plugged=self.num_plugged,
                    fraction_unplugged=self.fraction_unplugged, **metadata)

    def save(self, path: Union[str, os.PathLike], **metadata) -> None:
        """Write the code as JSON (``code``, ``integers``, ``stage_blocks``, ``plugged``,
        ``fraction_unplugged`` and ``metadata``), atomically."""
        atomic_write(path, json.dumps(self.to_dict(**metadata), indent=2) + '\n')

    @classmethod
    def load(cls, path: Union[str, os.PathLike],
             stage_blocks: Optional[Sequence[int]] = None) -> 'ConnectionCode':
        """Read a JSON file written by :meth:`save` (or any ``{"code": ...}``), checked
        against ``stage_blocks`` when given."""
        path = os.fspath(path)
        if not osp.isfile(path):
            raise FileNotFoundError(f'connection code file {path!r} does not exist')
        with open(path, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f'connection code file {path!r} is not JSON: {e}') from None
        if not isinstance(data, dict):
            data = dict(code=data)
        try:
            return cls._from_dict(data, _stage_blocks(stage_blocks))
        except ValueError as e:
            raise ValueError(f'{path}: {e}') from None


def _is_path(text: str) -> bool:
    """A ``.json`` name or an existing file; other text is parsed as bits (and a stray
    character is reported as such, not as a missing file)."""
    return _CODE_TEXT.fullmatch(text.strip()) is None and (
        text.lower().endswith('.json') or osp.isfile(text))
