"""``--connection-code code.json`` on tools/train.py and tools/test.py: the file is checked
against the config's backbone before anything is built, then the config holds the code."""
import argparse
import os.path as osp

import pytest
from _tools import ROOT, run_tool
from mmengine.config import Config

import mmsase
from mmsase.models.ean import ConnectionCode
from mmsase.utils.launch import add_common_arguments, prepare_config, set_connection_code

SGE_RETRAIN = mmsase.config_path('ean/resnet50_ean_sge_in1k.py')
CIFAR_RETRAIN = mmsase.config_path('ean/resnet164_ean_se_cifar10.py')


def test_the_code_of_the_file_goes_into_the_backbone(tmp_path):
    cfg = Config.fromfile(SGE_RETRAIN)
    path = tmp_path / 'best.json'
    ConnectionCode.parse((1, 2, 3, 4), (3, 4, 6, 3)).save(path)
    assert set_connection_code(cfg, str(path)) == '001-0010-000011-100'
    assert cfg.model.backbone.connection_code == '001-0010-000011-100'
    cifar = Config.fromfile(CIFAR_RETRAIN)
    ConnectionCode.all_plugged((18, 18, 18)).save(tmp_path / 'cifar.json')
    set_connection_code(cifar, str(tmp_path / 'cifar.json'))
    assert cifar.model.backbone.connection_code == '-'.join(['1' * 18] * 3)


def test_a_code_for_another_network_fails_with_what_was_expected(tmp_path):
    cfg = Config.fromfile(CIFAR_RETRAIN)
    path = tmp_path / 'r50.json'
    ConnectionCode.parse((4, 11, 19, 3), (3, 4, 6, 3)).save(path)
    with pytest.raises(ValueError, match=r'r50\.json: the connection code was written for '
                                         r'stage_blocks \(3, 4, 6, 3\); this network has '
                                         r'\(18, 18, 18\)'):
        set_connection_code(cfg, str(path))
    (tmp_path / 'short.json').write_text('{"code": [4, 11, 19]}')
    with pytest.raises(ValueError, match='3 entries; expected one per stage'):
        set_connection_code(Config.fromfile(SGE_RETRAIN), str(tmp_path / 'short.json'))


def test_a_model_without_attention_is_an_error(tmp_path):
    cfg = Config.fromfile(mmsase.config_path('resnet/resnet50_in1k.py'))
    ConnectionCode.all_plugged((3, 4, 6, 3)).save(tmp_path / 'code.json')
    with pytest.raises(ValueError, match='no mmsase.AttentionResNet or mmsase.CifarResNet '
                                         'backbone with an attention block'):
        set_connection_code(cfg, str(tmp_path / 'code.json'))


def test_prepare_config_applies_the_flag(tmp_path):
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    parser.add_argument('--work-dir')
    parser.add_argument('--amp', action='store_true')
    add_common_arguments(parser, '')
    path = mmsase.config_path('ean/codes/resnet50_dia_authors.json')
    args = parser.parse_args([SGE_RETRAIN, '--connection-code', path,
                              '--work-dir', str(tmp_path)])
    assert prepare_config(args).model.backbone.connection_code == '110-0011-110010-011'


def test_train_tool_rejects_a_bad_code_file_before_building(tmp_path):
    (tmp_path / 'bad.json').write_text('{"code": "10010110100110"}')
    out = run_tool(osp.join(ROOT, 'tools', 'train.py'), SGE_RETRAIN, '--connection-code',
                   str(tmp_path / 'bad.json'), '--work-dir', str(tmp_path), check=False)
    assert out.returncode == 1
    assert 'has 14 bits; expected 16 bits, one per residual block, 3+4+6+3' in out.stderr
