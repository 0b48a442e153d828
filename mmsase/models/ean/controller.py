"""The EAN search policy: one 2-way softmax per residual block, "plug the shared module or not".

EAN (Efficient Attention Network, AAAI; authors' code gbup-group/EAN-efficient-attention-network,
``search_imagent/EAN_search.py``) searches *where* to apply a stage's shared attention module.
Its ``Controller`` is an MLP ``Linear(20→50) → ReLU → Linear(50→2·blocks)`` that reads a
**constant zero input**, so its output is a fixed vector of logits, ``W2·relu(b1) + b2``: the
policy is effectively free logits. The logits are divided by the temperature 5, every block's
pair goes through a softmax, and action 1 means "plug" (its ``tanh_c`` exploration is dead code).

:class:`ConnectionController` keeps that policy. By default it holds the free logits directly
(one pair per block, initialised to 0: every block plugged with probability 1/2); with
``mlp=(20, 50)`` it is the authors' MLP on a zero input, which has the same policy family but
moves faster under Adam (every output logit depends on 2·50 + 1 parameters, each stepped by
about the learning rate).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['ConnectionController']


class ConnectionController(nn.Module):
    """Per-block Bernoulli policy over connection codes, parametrised by 2-way logits.

    Codes are ``(n, num_blocks)`` int64 tensors of 0/1, blocks in network order (stage by
    stage, first block first); 1 = the block applies its stage's shared attention module.

    Args:
        num_blocks (int): residual blocks in the network (ResNet-50: 16).
        temperature (float): the logits are ``parameters / temperature`` (authors: 5).
        mlp (tuple[int, int], optional): ``(input_size, hidden_size)`` of the authors' MLP
            on a zero input (they use ``(20, 50)``); None: free logits.
        seed (int): seeds the MLP's initialisation (free logits start at 0), independently
            of the global random state.
    """

    def __init__(self, num_blocks: int, temperature: float = 5.0,
                 mlp: Optional[Sequence[int]] = None, seed: int = 0):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f'num_blocks must be >= 1, got {num_blocks}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.num_blocks = num_blocks
        self.temperature = float(temperature)
        self.mlp_sizes = tuple(mlp) if mlp is not None else None
        if self.mlp_sizes is None:
            self.weight = nn.Parameter(torch.zeros(num_blocks, 2))  # column 1: plug
        else:
            input_size, hidden_size = self.mlp_sizes
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.mlp = nn.Sequential(
                    nn.Linear(input_size, hidden_size), nn.ReLU(),
                    nn.Linear(hidden_size, 2 * num_blocks))

    def logits(self) -> torch.Tensor:
        """``(num_blocks, 2)`` tempered logits; column 1 is "plug"."""
        if self.mlp_sizes is None:
            raw = self.weight
        else:
            zeros = self.mlp[0].weight.new_zeros(1, self.mlp_sizes[0])
            raw = self.mlp(zeros).view(self.num_blocks, 2)
        return raw / self.temperature

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """``(n, num_blocks)`` log-probabilities of each block's action in ``codes``."""
        codes = self._check(codes)
        log_pi = F.log_softmax(self.logits(), dim=-1)  # (blocks, 2)
        return log_pi.t().gather(0, codes)  # row a of log_pi.t() is action a

    def sample(self, n: int = 1, generator: Optional[torch.Generator] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` codes independently; return ``(codes, log_probs)``, both
        ``(n, num_blocks)``; ``log_probs`` carries the gradient of the policy."""
        plug = self.probabilities().detach()
        uniform = torch.rand(n, self.num_blocks, generator=generator, dtype=plug.dtype)
        codes = (uniform < plug).long()
        return codes, self.log_prob(codes)

    def probabilities(self) -> torch.Tensor:
        """``(num_blocks,)`` probability of plugging each block."""
        return F.softmax(self.logits(), dim=-1)[:, 1]

    def entropy(self) -> torch.Tensor:
        """Entropy of the policy in nats, summed over the blocks."""
        log_pi = F.log_softmax(self.logits(), dim=-1)
        return -(log_pi.exp() * log_pi).sum()

    def most_likely(self) -> Tuple[int, ...]:
        """The most probable code: plug where the probability is at least 1/2."""
        return tuple(int(p >= 0.5) for p in self.probabilities().tolist())

    def _check(self, codes) -> torch.Tensor:
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.dim() == 1:
            codes = codes.unsqueeze(0)
        if codes.dim() != 2 or codes.shape[1] != self.num_blocks:
            raise ValueError(f'codes must have shape (n, {self.num_blocks}), '
                             f'got {tuple(codes.shape)}')
        if ((codes != 0) & (codes != 1)).any():
            raise ValueError('codes must hold only 0 (unplugged) and 1 (plugged)')
        return codes

    def extra_repr(self) -> str:
        policy = 'free logits' if self.mlp_sizes is None else f'mlp={self.mlp_sizes}'
        return f'num_blocks={self.num_blocks}, temperature={self.temperature}, {policy}'
