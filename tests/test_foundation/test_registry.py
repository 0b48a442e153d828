"""mmsase modules are buildable from mmdet- and mmpretrain-scope configs."""
import subprocess
import sys
import textwrap

import pytest

# Each case runs in a fresh interpreter: registration through `custom_imports` or the
# `mmsase.` prefix must work from a process that never imported mmsase itself.
CASES = {
    'mmdet-custom-imports': ('mmdet', True, 'SASE'),
    'mmdet-prefix': ('mmdet', False, 'mmsase.SASE'),
    'mmpretrain-custom-imports': ('mmpretrain', True, 'SASE'),
    'mmpretrain-prefix': ('mmpretrain', False, 'mmsase.SASE'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_block_builds_from_other_scopes(case):
    scope, custom_imports, block_type = CASES[case]
    script = textwrap.dedent(f'''
        import torch
        from mmengine.config import Config
        from mmengine.registry import DefaultScope, init_default_scope
        import {scope}.registry as reg
        cfg = Config(dict(
            default_scope={scope!r},
            {"custom_imports=dict(imports=['mmsase.models']), " if custom_imports else ""}
            block=dict(type={block_type!r}, in_channels=32)))
        if cfg.get('custom_imports'):
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**cfg.custom_imports)
        init_default_scope({scope!r})
        block = reg.MODELS.build(cfg.block)
        assert type(block).__name__ == 'SASE', type(block)
        y = block.eval()(torch.randn(2, 32, 7, 9))
        assert y.shape == (2, 32, 7, 9)
        print('built', type(block).__module__)
    ''')
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'built mmsase.' in out.stdout


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
def test_backbone_builds_with_prefix(scope):
    script = textwrap.dedent(f'''
        import torch
        from mmengine.registry import init_default_scope
        import {scope}.registry as reg
        init_default_scope({scope!r})
        net = reg.MODELS.build(dict(type='mmsase.CifarResNet', depth=20,
                                    attention=dict(type='SASE')))
        out = net(torch.randn(1, 3, 32, 32))
        assert out[-1].shape == (1, 64, 8, 8), out[-1].shape
        print('ok')
    ''')
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def test_mmdet_resnet_plugin_uses_sase():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmsase.models  # noqa: F401
    init_default_scope('mmdet')
    backbone = MODELS.build(
        dict(type='ResNet', depth=50, base_channels=16, stem_channels=16,
             plugins=[dict(cfg=dict(type='SASE'), position='after_conv3')]))
    block = backbone.layer1[0]
    assert block.after_conv3_plugin_names == ['sase']
    assert type(block.sase).__name__ == 'SASE'


def test_register_all_modules_sets_scope():
    from mmengine.registry import DefaultScope

    from mmsase.registry import MODELS
    from mmsase.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    assert DefaultScope.get_current_instance().scope_name == 'mmsase'
    for name in ('AttentionResNet', 'CifarResNet'):
        assert MODELS.get(name) is not None, name
    assert MODELS.get('SASE') is not None  # found through the parent (root) registry
