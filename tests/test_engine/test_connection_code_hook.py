"""EAN's supernet codes: RandomConnectionCodeHook draws iteration i's code from (run seed, i), so
every rank draws the same code without communicating and a resumed run continues the sequence
of an uninterrupted one; validation uses the fixed code. The 2-rank test:
test_connection_code_distributed.py."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmsase.engine.hooks import RandomConnectionCodeHook
from mmsase.engine.hooks.connection_code_hook import CODE_KEY, iteration_generator
from mmsase.models.backbones import CifarResNet
from mmsase.models.ean import ConnectionCode


class SupernetToy(BaseModel):
    """A CIFAR ResNet-20 (9 bits) with shared SE and a linear head; records the code of every
    training forward."""

    def __init__(self):
        super().__init__()
        self.backbone = CifarResNet(depth=20, attention=dict(type='mmsase.SE', reduction=4),
                                    attention_shared=True)
        self.head = nn.Linear(64, 2)
        self.codes = []

    def forward(self, inputs, labels=None, mode='tensor'):
        if mode == 'loss':
            self.codes.append(str(self.backbone.connection_code))
        logits = self.head(self.backbone(inputs.float())[0].mean((2, 3)))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


class FakeRunner:
    """What the hook reads of a runner."""

    def __init__(self, model, seed, diff_rank_seed=False):
        from mmengine.logging import MessageHub
        self.model, self.seed, self.iter = model, seed, 0
        self._randomness_cfg = dict(seed=None, diff_rank_seed=diff_rank_seed)
        self.message_hub = MessageHub.get_instance('connection_code_test')


def toy_runner(work_dir, max_iters, seed=None, resume=False):
    generator = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randn(3, 16, 16, generator=generator), labels=i % 2)
            for i in range(8)]
    return Runner(
        model=SupernetToy(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, batch_size=2, collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='mmsase.RandomConnectionCodeHook')],
        randomness=dict(seed=seed),
        resume=resume,
        default_scope='mmsase')


@pytest.mark.slow
def test_a_resumed_run_draws_the_codes_of_an_uninterrupted_one(tmp_path):
    whole = toy_runner(tmp_path / 'whole', 4, seed=7)
    whole.train()
    # read now: runners built within the same second share one message hub (mmengine names
    # it after the run's timestamp), so the runs below may write to it too
    assert whole.message_hub.get_info(CODE_KEY) == whole.model.codes[-1]
    first = toy_runner(tmp_path / 'split', 2, seed=7)
    first.train()
    # the resumed run's config has no seed: mmengine restores the checkpoint's
    second = toy_runner(tmp_path / 'split', 4, seed=None, resume=True)
    second.train()
    assert second.seed == 7
    assert len(whole.model.codes) == 4 and len(set(whole.model.codes)) > 1
    assert first.model.codes + second.model.codes == whole.model.codes
    hook = RandomConnectionCodeHook()
    assert whole.model.codes == [str(hook.code_for(whole, i)) for i in range(4)]
    assert [str(hook.code_for(whole, i)) for i in range(4)] != \
        [str(RandomConnectionCodeHook(seed=8).code_for(whole, i)) for i in range(4)]


@pytest.mark.parametrize('val_code,expected', [
    ('none', '000000000'), ('all', '111111111'), ((4, 0, 7), '100000111'),
    ('010-010-010', '010010010'),
])
def test_validation_and_test_use_the_fixed_code(val_code, expected):
    runner = FakeRunner(SupernetToy(), seed=0)
    hook = RandomConnectionCodeHook(val_code=val_code)
    hook.before_test_epoch(runner)  # tools/test.py: no training, no before_run needed
    assert str(runner.model.backbone.connection_code) == expected
    hook.before_run(runner)
    hook.before_train_iter(runner, 0)
    hook.before_val_epoch(runner)
    assert str(runner.model.backbone.connection_code) == expected
    hook.before_train_iter(runner, 0)
    hook.before_test_epoch(runner)
    assert str(runner.model.backbone.connection_code) == expected
    assert runner.message_hub.get_info(CODE_KEY) == expected


def test_iteration_generators_differ_and_repeat():
    draws = {(s, i): torch.rand(4, generator=iteration_generator(s, i)).tolist()
             for s in (0, 1) for i in (0, 1)}
    assert len({tuple(v) for v in draws.values()}) == 4
    assert draws[(1, 0)] == torch.rand(4, generator=iteration_generator(1, 0)).tolist()


def test_errors():
    runner = FakeRunner(nn.Linear(2, 2), seed=0)
    with pytest.raises(ValueError, match='no backbone that takes EAN connection codes'):
        RandomConnectionCodeHook().before_run(runner)
    with pytest.raises(ValueError, match='p must be a probability'):
        RandomConnectionCodeHook(p=2)
    with pytest.raises(ValueError, match=r'has 2 bits; expected 9 bits'):
        RandomConnectionCodeHook(val_code='01').before_run(FakeRunner(SupernetToy(), 0))
    assert ConnectionCode.random((3, 3, 3), iteration_generator(0, 0), p=1.0) == \
        ConnectionCode.all_plugged((3, 3, 3))
