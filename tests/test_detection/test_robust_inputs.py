"""Bad detection inputs end with one clear error line from the tools, no traceback."""
import json
import shutil

from .helpers import FASTER, coco_options, run_tool


def assert_clear_error(out, *fragments):
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert 'Traceback' not in out.stderr, out.stderr[-3000:]
    for fragment in fragments:
        assert fragment in out.stderr, (fragment, out.stderr[-3000:])


def test_missing_data_root(tmp_path):
    missing = str(tmp_path / 'no_such_coco')
    out = run_tool('tools/train.py', FASTER, '--work-dir', str(tmp_path / 'w'),
                   '--cfg-options', *coco_options(missing), check=False)
    assert_clear_error(out, 'no_such_coco', 'tools/generate_data.py')


def test_broken_annotation_entry(coco_root, tmp_path):
    root = tmp_path / 'coco'
    shutil.copytree(coco_root, root)
    ann_file = root / 'annotations' / 'instances_train.json'
    data = json.loads(ann_file.read_text())
    data['annotations'][2]['bbox'] = [1, 2, 3]
    ann_id = data['annotations'][2]['id']
    ann_file.write_text(json.dumps(data))
    out = run_tool('tools/train.py', FASTER, '--work-dir', str(tmp_path / 'w'),
                   '--cfg-options', *coco_options(str(root)), check=False)
    assert_clear_error(out, 'instances_train.json', f'annotation id {ann_id}', 'bbox')


def test_genotype_that_does_not_match_the_spec(tmp_path):
    bad = tmp_path / 'genotype.json'
    bad.write_text(json.dumps({'cs': 'gap', 'ce1': 'fc', 'ce2': 'affine', 'ss1': 'gap',
                               'ss2': 'l4'}))  # no 'se' edge
    out = run_tool('tools/train.py', FASTER, '--genotype', str(bad), '--work-dir',
                   str(tmp_path / 'w'), check=False)
    assert_clear_error(out, 'genotype.json', "'se'")
