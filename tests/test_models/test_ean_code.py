"""EAN connection codes: the authors' per-stage integers (leftmost bit = first block), bit
strings, files, and errors that say what the network expects."""
import json

import pytest
import torch

from mmsase.models.ean import ConnectionCode

R50 = (3, 4, 6, 3)
AUTHORS_SGE = '1001011010011011'  # run_codes_train_from_scratch.py, = (4, 11, 19, 3)


def test_authors_integers_leftmost_bit_is_the_first_block():
    code = ConnectionCode.parse((4, 11, 19, 3), R50)
    assert code.bits == ((1, 0, 0), (1, 0, 1, 1), (0, 1, 0, 0, 1, 1), (0, 1, 1))
    assert str(code) == AUTHORS_SGE
    assert code.integers == (4, 11, 19, 3)
    assert code.to_string('-') == '100-1011-010011-011'
    assert code.stage_strings() == ('100', '1011', '010011', '011')
    assert code.num_plugged == 9 and code.num_blocks == 16
    assert code.fraction_unplugged == pytest.approx(7 / 16)
    assert ConnectionCode.parse((1, 0, 0, 0), R50).flat == (0, 0, 1) + (0, ) * 13


@pytest.mark.parametrize('form', [
    AUTHORS_SGE, '100-1011-010011-011', '100 1011 010011 011', '100|1011|010011|011',
    ('100', '1011', '010011', '011'), [[1, 0, 0], [1, 0, 1, 1], [0, 1, 0, 0, 1, 1], [0, 1, 1]],
    (4, 11, 19, 3), {'code': [4, 11, 19, 3], 'stage_blocks': [3, 4, 6, 3]},
])
def test_every_form_gives_the_same_code(form):
    assert ConnectionCode.parse(form, R50) == ConnectionCode.parse((4, 11, 19, 3), R50)


def test_separated_strings_need_no_stage_blocks():
    assert ConnectionCode.parse('100-1011-010011-011').stage_blocks == R50
    with pytest.raises(ValueError, match='stage block counts'):
        ConnectionCode.parse(AUTHORS_SGE)
    with pytest.raises(ValueError, match='integers need the stage block counts'):
        ConnectionCode.parse((4, 11, 19, 3))


def test_all_none_and_their_integers():
    assert ConnectionCode.all_plugged(R50).integers == (7, 15, 63, 7)
    assert ConnectionCode.none_plugged(R50).integers == (0, 0, 0, 0)
    assert ConnectionCode.all_plugged(R50).fraction_unplugged == 0.0


@pytest.mark.parametrize('code,message', [
    ((8, 11, 19, 3), r'stage 1 .* is 8: its 3 blocks take 0\.\.7'),
    ((4, 11, 64, 3), r'stage 3 .* is 64: its 6 blocks take 0\.\.63 \(all plugged = 63\)'),
    ((4, 11, 19), r'3 entries; expected one per stage \(4 stages\): 16 bits'),
    ('100101101001101', r'has 15 bits; expected 16 bits, one per residual block, 3\+4\+6\+3'),
    ('10010110100110112', r"characters \['2'\] other than 0/1"),
    ('1001011a10011011', r"characters \['a'\]"),
    ('100-1011-010011', r'3 groups; the network has 4 stages'),
    ('100-101-1010011-011', r'stages of \(3, 3, 7, 3\) blocks; expected 16 bits'),
    (('100', '10x1', '010011', '011'), r"stage 2 .* is '10x1': expected a string of 0/1"),
    ({'code': AUTHORS_SGE, 'stage_blocks': [3, 4, 23, 3]}, r'written for stage_blocks '
     r'\(3, 4, 23, 3\); this network has \(3, 4, 6, 3\)'),
    ({'bits': AUTHORS_SGE}, 'needs a "code" key'),
])
def test_wrong_codes_say_what_was_expected(code, message):
    with pytest.raises(ValueError, match=message):
        ConnectionCode.parse(code, R50)


def test_check_against_another_network():
    with pytest.raises(ValueError, match=r'expected 33 bits, one per residual block, 3\+4\+23\+3'):
        ConnectionCode.parse(AUTHORS_SGE, R50).check((3, 4, 23, 3))


def test_save_is_atomic_json_and_load_round_trips(tmp_path, monkeypatch):
    path = tmp_path / 'codes' / 'best.json'
    calls = []
    import mmsase.models.ean.code as code_module
    from mmsase.utils.atomic_io import atomic_write

    def recording_write(*args, **kwargs):
        calls.append(args[0])
        atomic_write(*args, **kwargs)

    monkeypatch.setattr(code_module, 'atomic_write', recording_write)
    code = ConnectionCode.parse(AUTHORS_SGE, R50)
    code.save(path, step=300)
    assert calls == [path]
    data = json.loads(path.read_text())
    assert data == dict(code=AUTHORS_SGE, integers=[4, 11, 19, 3], stage_blocks=[3, 4, 6, 3],
                        plugged=9, fraction_unplugged=0.4375, step=300)
    assert ConnectionCode.load(path) == code
    assert ConnectionCode.load(str(path), R50) == code
    assert ConnectionCode.parse(str(path), R50) == code  # a path is a form too
    with pytest.raises(ValueError, match=r'best\.json: .*written for stage_blocks'):
        ConnectionCode.load(path, (3, 4, 23, 3))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        ConnectionCode.parse(str(tmp_path / 'missing.json'), R50)
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(ValueError, match='is not JSON'):
        ConnectionCode.load(tmp_path / 'bad.json')


def test_shipped_example_codes_load():
    import mmsase
    sge = ConnectionCode.load(mmsase.config_path('ean/codes/resnet50_sge_authors.json'), R50)
    dia = ConnectionCode.load(mmsase.config_path('ean/codes/resnet50_dia_authors.json'), R50)
    assert sge.integers == (4, 11, 19, 3) and dia.integers == (6, 3, 50, 3)
    assert ConnectionCode.load(mmsase.config_path('ean/codes/resnet50_all_plugged.json'),
                               R50).integers == (7, 15, 63, 7)


def test_random_codes_follow_the_generator_and_are_uniform():
    first = ConnectionCode.random(R50, torch.Generator().manual_seed(3))
    assert first == ConnectionCode.random(R50, torch.Generator().manual_seed(3))
    assert first.stage_blocks == R50
    generator = torch.Generator().manual_seed(0)
    codes = [ConnectionCode.random(R50, generator) for _ in range(400)]
    assert len(set(codes)) > 390  # 2^16 codes: 400 draws repeat ~1.2 on average
    bits = torch.tensor([c.flat for c in codes], dtype=torch.float64)
    assert (bits.mean(0) - 0.5).abs().max() < 0.1  # each block plugged with probability 1/2
    assert ConnectionCode.random(R50, generator, p=0.0) == ConnectionCode.none_plugged(R50)
