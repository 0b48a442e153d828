"""--amp: bfloat16 autocast on CPU (mmengine's AmpOptimWrapper needs an accelerator)."""
import pytest
import torch
from mmengine.config import Config

import mmsase

from mmsase.engine.optim_wrappers import CPUAutocastOptimWrapper
from mmsase.utils.launch import setup_amp


def test_cpu_autocast_wrapper_runs_forward_in_bfloat16():
    model = torch.nn.Linear(4, 3)
    wrapper = CPUAutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    before = model.weight.detach().clone()
    wrapper.update_params(out.float().pow(2).mean())
    assert not torch.equal(before, model.weight)  # the step happened, in float32 weights
    assert model.weight.dtype == torch.float32


def test_amp_flag_picks_the_cpu_wrapper_without_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=1))))
    setup_amp(cfg)
    assert cfg.optim_wrapper.type == 'mmsase.CPUAutocastOptimWrapper'


def test_amp_flag_refuses_a_search_config():
    cfg = Config.fromfile(mmsase.config_path('sase_search_resnet20_cifar10.py'))
    with pytest.raises(ValueError, match=r"not supported for a SASE search.*\['architecture', "
                       r"'weights'\]"):
        setup_amp(cfg)
