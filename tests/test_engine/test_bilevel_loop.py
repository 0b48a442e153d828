"""BilevelEpochBasedTrainLoop: feeds both splits and reseeds per epoch."""
import random

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

from _search_toys import ToyImages, collate


class RecordingModel(BaseModel):
    """Records the sample indices of both splits instead of training."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)
        self.batches = []
        self.rng_draws = []
        self.extra_draws = 0  # random numbers drawn after recording, at each iteration

    def train_step(self, data, optim_wrapper):
        self.batches.append({
            split: [s.sample_idx for s in batch['data_samples']]
            for split, batch in data.items()
        })
        if len(self.batches) % 5 == 1:  # the first iteration of an epoch
            self.rng_draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
        for _ in range(self.extra_draws):
            random.random(), np.random.rand(), torch.rand(1)
        return {}

    def forward(self, *args, **kwargs):
        pass


def loader(part, batch_size):
    return dict(
        dataset=dict(type='mmsase.HalfSplit', dataset=ToyImages(20), part=part, seed=0),
        batch_size=batch_size,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=collate,
        num_workers=0)


@pytest.fixture
def loop_warnings(monkeypatch):
    """The messages the loop logs."""
    from mmsase.engine.loops import bilevel_loop
    messages = []
    monkeypatch.setattr(bilevel_loop, 'print_log', lambda msg, **kw: messages.append(msg))
    return messages


def recording_runner(work_dir, seed=3):
    return Runner(
        model=RecordingModel(),
        work_dir=str(work_dir),
        train_dataloader=loader(part=0, batch_size=2),
        train_cfg=dict(type='mmsase.BilevelEpochBasedTrainLoop', max_epochs=2,
                       arch_dataloader=loader(part=1, batch_size=5)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=None, logger=None),
        randomness=dict(seed=seed),
        default_scope='mmsase')


def test_loop_consumes_both_splits(tmp_path, loop_warnings):
    runner = recording_runner(tmp_path)
    runner.train()
    model = runner.model
    assert loop_warnings == []  # a fixed seed: resumption is exact

    from mmsase.datasets.split import split_indices
    weight_half, arch_half = (set(p.tolist()) for p in split_indices(20, 2, seed=0))
    assert len(model.batches) == 10  # 2 epochs x 10 samples / batch 2
    for epoch in range(2):
        batches = model.batches[epoch * 5:(epoch + 1) * 5]
        weights_seen = [i for b in batches for i in b['weights']]
        assert sorted(weights_seen) == sorted(weight_half)  # each weight sample once
        arch_seen = [i for b in batches for i in b['architecture']]
        assert len(arch_seen) == 5 * 5  # the arch loader (2 batches) restarted
        assert set(arch_seen) == arch_half
    # different orders in the two epochs, in both splits (set_epoch)
    assert model.batches[0]['weights'] != model.batches[5]['weights']
    assert [b['architecture'] for b in model.batches[:5]] != \
        [b['architecture'] for b in model.batches[5:]]
    # the global RNGs are reseeded from (seed, epoch) at each epoch start: what a run drew
    # during epoch 0 does not change epoch 1's draws (as for a run resumed at epoch 1)
    other = recording_runner(tmp_path / 'other')
    other.model.extra_draws = 3
    other.train()
    assert other.model.rng_draws == model.rng_draws
    assert model.rng_draws[0] != model.rng_draws[1]


def test_loop_warns_that_resumption_needs_a_fixed_seed(tmp_path, loop_warnings):
    recording_runner(tmp_path, seed=None).train_loop  # builds the loop
    assert len(loop_warnings) == 1 and 'randomness.seed is not set' in loop_warnings[0]
