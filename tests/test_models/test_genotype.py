"""Genotype utilities: validation, JSON files (atomic writes), random genotypes."""
import json
import os

import pytest

from mmsase.models.sase import genotype as genotype_module
from mmsase.models.sase.genotype import (PAPER_GENOTYPE, load_genotype, random_genotype,
                                         save_genotype, validate_genotype)
from mmsase.models.search_space import EDGE_OP_SET, EDGES, OP_SETS

from .helpers import single_thread  # noqa: F401 (autouse fixture)

ALL_EDGES_LISTED = 'cs, ce1, ce2, ss1, ss2, se'


def test_paper_genotype_is_the_searched_one():
    assert dict(PAPER_GENOTYPE) == {
        'cs': 'gap_gmp', 'ce1': 'fc', 'ce2': 'affine', 'ss1': 'gap', 'ss2': 'l4',
        'se': 'conv_3x3x2'}
    with pytest.raises(TypeError):
        PAPER_GENOTYPE['cs'] = 'gap'  # read-only


def test_load_none_gives_a_fresh_copy_of_the_paper_genotype():
    g = load_genotype(None)
    assert g == dict(PAPER_GENOTYPE) and isinstance(g, dict)
    g['cs'] = 'gap'
    assert PAPER_GENOTYPE['cs'] == 'gap_gmp'


def test_validate_returns_edge_order_and_drops_metadata():
    shuffled = {e: PAPER_GENOTYPE[e] for e in reversed(EDGES)}
    out = validate_genotype({**shuffled, '_source': 'test', '_alpha': [[0.1]]})
    assert list(out) == list(EDGES) and out == dict(PAPER_GENOTYPE)


def test_unknown_edge_is_named_with_the_allowed_edges():
    with pytest.raises(ValueError) as info:
        validate_genotype({**PAPER_GENOTYPE, 'cs3': 'gap'})
    assert "'cs3'" in str(info.value) and ALL_EDGES_LISTED in str(info.value)


def test_missing_edge_is_named_with_the_required_edges():
    g = dict(PAPER_GENOTYPE)
    del g['ss2']
    with pytest.raises(ValueError) as info:
        validate_genotype(g)
    assert "missing edge(s) 'ss2'" in str(info.value) and ALL_EDGES_LISTED in str(info.value)


@pytest.mark.parametrize('edge', EDGES)
def test_unknown_op_is_named_with_the_allowed_ops(edge):
    with pytest.raises(ValueError) as info:
        validate_genotype({**PAPER_GENOTYPE, edge: 'conv_9'})
    msg = str(info.value)
    assert "'conv_9'" in msg and repr(edge) in msg
    assert ', '.join(OP_SETS[EDGE_OP_SET[edge]]) in msg


def test_op_of_the_wrong_set_is_rejected():
    # 'fc' is a channel-excitation op; the spatial-excitation edge cannot take it.
    with pytest.raises(ValueError, match="unknown operation 'fc' for edge 'se'"):
        validate_genotype({**PAPER_GENOTYPE, 'se': 'fc'})


def test_non_mapping_is_rejected():
    with pytest.raises(ValueError, match='mapping'):
        validate_genotype(['gap_gmp', 'fc'])
    with pytest.raises(TypeError, match='None, a mapping or a path'):
        load_genotype(42)


def test_json_round_trip(tmp_path):
    path = tmp_path / 'genotype.json'
    g = random_genotype(3)
    save_genotype(g, path, metadata={'_source': 'unit test', '_alpha': [[1.0, 2.0]]})
    raw = json.loads(path.read_text())
    assert {k: raw[k] for k in EDGES} == g  # the plain {edge: op} format
    assert raw['_source'] == 'unit test'
    assert load_genotype(path) == g
    assert load_genotype(str(path)) == g


def test_save_rejects_unprefixed_metadata_and_invalid_genotypes(tmp_path):
    with pytest.raises(ValueError, match='must start with "_"'):
        save_genotype(PAPER_GENOTYPE, tmp_path / 'g.json', metadata={'source': 'x'})
    with pytest.raises(ValueError, match="'bogus'"):
        save_genotype({**PAPER_GENOTYPE, 'cs': 'bogus'}, tmp_path / 'g.json')
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    from mmsase.utils import atomic_io
    path = tmp_path / 'genotype.json'
    save_genotype(PAPER_GENOTYPE, path)
    before = path.read_text()

    def fail(fd):  # the new JSON is written to the temporary file, then the disk fails
        raise OSError('disk full')

    monkeypatch.setattr(atomic_io.os, 'fsync', fail)
    with pytest.raises(OSError, match='disk full'):
        save_genotype(random_genotype(0), path)
    assert path.read_text() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ['genotype.json']  # no temp left
    assert load_genotype(path) == dict(PAPER_GENOTYPE)


def test_missing_file(tmp_path):
    path = tmp_path / 'nope.json'
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_genotype(path)


@pytest.mark.parametrize('content,problem', [
    ('{"cs": "gap_gmp", "ce1": ', 'not valid JSON'),
    ('', 'not valid JSON'),
    ('["gap_gmp"]', 'mapping'),
    ('{"cs": "gap_gmp"}', "missing edge(s) 'ce1'"),
    (json.dumps({**PAPER_GENOTYPE, 'ss1': 'gapp'}), "unknown operation 'gapp'"),
])
def test_malformed_file_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / 'bad.json'
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_genotype(path)
    assert 'bad.json' in str(info.value) and problem in str(info.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(ValueError, match='cannot read genotype file'):
        load_genotype(tmp_path)  # a directory
    binary = tmp_path / 'binary.json'
    binary.write_bytes(b'\xff\xfe\x00garbage')
    with pytest.raises(ValueError, match='binary.json'):
        load_genotype(binary)


def test_random_genotype_is_deterministic_and_valid():
    assert random_genotype(7) == random_genotype(7)
    draws = [random_genotype(seed) for seed in range(200)]
    assert len({tuple(g.values()) for g in draws}) > 150  # seeds give different genotypes
    for g in draws:
        assert validate_genotype(g) == g


def test_random_genotype_covers_every_op_of_every_edge():
    seen = {edge: set() for edge in EDGES}
    for seed in range(300):
        for edge, op in random_genotype(seed).items():
            seen[edge].add(op)
    assert seen == {edge: set(OP_SETS[EDGE_OP_SET[edge]]) for edge in EDGES}
