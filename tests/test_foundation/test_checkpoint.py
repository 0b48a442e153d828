"""Checkpoints load under weights-only unpickling, are written atomically, and bad
files give errors that name them."""
import os
import random

import pytest
import torch

from mmsase.utils.atomic_io import atomic_write
from mmsase.utils.checkpoint import (AtomicLocalBackend, CheckpointError,
                                     install_checkpoint_safety, load_checkpoint_file)


@pytest.fixture(autouse=True)
def _safety():
    install_checkpoint_safety()


def _mmengine_like_checkpoint():
    import numpy as np
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_checkpoint_hub')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_info('iter', 3)
    return dict(
        meta=dict(epoch=1, iter=3, seed=0, hist=np.arange(3, dtype=np.float32)),
        state_dict=dict(w=torch.ones(2)),
        message_hub=hub.state_dict())


def test_mmengine_checkpoint_loads_weights_only(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    ckpt = load_checkpoint_file(str(path))
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert ckpt['message_hub']['log_scalars']['train/loss'].mean() == pytest.approx(0.375)


def test_mmengine_load_goes_through_safe_loader(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'ckpt.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    assert _load_checkpoint(str(path))['meta']['iter'] == 3
    (tmp_path / 'bad.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='bad.pth'):
        _load_checkpoint(str(tmp_path / 'bad.pth'))


class Arbitrary:
    pass


def assert_no_unsafe_advice(message):
    """The message is one line and never nudges towards switching weights-only loading off
    (torch's own text says so: "Re-running `torch.load` with `weights_only` set to `False`")."""
    assert '\n' not in message
    assert 'weights_only=False' not in message
    assert 'weights_only' not in message  # neither `weights_only` set to `False`
    assert 'arbitrary code' not in message


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_arbitrary_objects_are_refused(tmp_path, zip_format):
    path = tmp_path / 'evil.pth'
    torch.save({'obj': Arbitrary()}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError, match='weights-only') as info:
        load_checkpoint_file(str(path))
    message = str(info.value)
    assert_no_unsafe_advice(message)
    name = f'{Arbitrary.__module__}.Arbitrary'  # the type is named, with the fix for it
    assert str(path) in message and f'not on the weights-only allow-list ({name})' in message
    assert f'torch.serialization.add_safe_globals([{name}])' in message
    assert 'truncated or corrupt' not in message  # the file itself is intact


def test_refused_type_loads_once_allow_listed_as_the_message_says(tmp_path):
    """The advice works: inside ``torch.serialization.safe_globals`` the same file loads,
    weights-only loading still on; outside it, it is refused again."""
    path = tmp_path / 'trusted.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'obj': Arbitrary()}, path)
    with torch.serialization.safe_globals([Arbitrary]):
        ckpt = load_checkpoint_file(str(path))
    assert isinstance(ckpt['obj'], Arbitrary) and torch.equal(ckpt['state_dict']['w'],
                                                              torch.ones(2))
    with pytest.raises(CheckpointError, match='allow-list'):
        load_checkpoint_file(str(path))


def test_blocked_module_is_called_out(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'obj': os.system}, path)  # pickled as posix.system (nt.system on Windows)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(str(path))
    message = str(info.value)
    assert_no_unsafe_advice(message)
    assert str(path) in message and f'{os.name}.system' in message
    assert 'never allowed' in message and 'add_safe_globals' not in message


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'garbage-2', 'empty', 'pickle'])
def test_damaged_checkpoint_gives_clear_error(tmp_path, damage):
    import pickle
    path = tmp_path / 'epoch_1.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    data = path.read_bytes()
    rng = random.Random(damage)
    garbage = bytes(rng.randrange(256) for _ in range(256))
    while garbage[:1] == b'\x80' or garbage[:2] == b'PK':  # neither pickle nor zip
        garbage = garbage[1:]
    path.write_bytes({'truncate': data[:len(data) // 2],
                      'garbage': garbage,
                      'garbage-2': b'\x80\x02' + bytes(rng.randrange(256) for _ in range(64)),
                      'empty': b'',
                      'pickle': pickle.dumps({'w': [1.0, 2.0]}, protocol=2)}[damage])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(str(path))
    message = str(info.value)
    assert 'epoch_1.pth' in message and ('truncated or corrupt' in message)
    assert f'({path.stat().st_size} bytes)' in message
    assert_no_unsafe_advice(message)
    assert 'allow-list' not in message  # nothing to allow: the file is damaged
    # what is wrong with this file
    assert {'truncate': "starts as torch.save's zip archive but the archive's end",
            'garbage': "neither a zip archive (torch.save's format) nor a pickle",
            'garbage-2': 'a pickle that cannot be read',
            'empty': 'it is empty',
            'pickle': 'not written by torch.save'}[damage] in message


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(CheckpointError, match='nope.pth.*does not exist'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_torchvision_scheme_fails_offline_with_instructions(tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import _load_checkpoint
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(CheckpointError, match='resnet50.*not available offline'):
        _load_checkpoint('torchvision://resnet50')


def test_atomic_backend_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / 'last_checkpoint'
    backend = AtomicLocalBackend()
    backend.put_text('old', str(path))

    def fail(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', fail)
    with pytest.raises(OSError):
        backend.put(b'new contents', str(path))
    assert path.read_text() == 'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last_checkpoint']


def test_atomic_writes_have_the_usual_file_modes(tmp_path):
    """mkstemp's private 0600 is not kept: a new file gets 0666 less the umask, a replaced
    file keeps its mode; a missing directory is created."""
    path = tmp_path / 'new' / 'epoch_1.pth'
    old_umask = os.umask(0o027)
    try:
        atomic_write(path, b'1')
    finally:
        os.umask(old_umask)
    assert os.stat(path).st_mode & 0o777 == 0o640
    os.chmod(path, 0o604)
    atomic_write(path, b'2')
    assert os.stat(path).st_mode & 0o777 == 0o604 and path.read_bytes() == b'2'


def test_mmengine_uses_atomic_backend(tmp_path):
    from mmengine.fileio import get_file_backend
    assert isinstance(get_file_backend(str(tmp_path / 'x.pth')), AtomicLocalBackend)


def test_getattr_stand_in_only_gives_history_buffer_methods(tmp_path):
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer

    from mmsase.utils.checkpoint import history_buffer_method
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for owner, name in [(HistoryBuffer, '__init__'), (HistoryBuffer, '_statistics_methods'),
                        (os, 'system'), (torch, 'load')]:
        with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer'):
            history_buffer_method(owner, name)


def test_latest_checkpoint_survives_a_torn_pointer(tmp_path, monkeypatch):
    from mmsase.utils.checkpoint import latest_checkpoint
    warnings = []
    monkeypatch.setattr('mmengine.logging.print_log', lambda msg, **kw: warnings.append(msg))
    assert latest_checkpoint(str(tmp_path)) is None
    for n in (1, 2, 10):
        path = tmp_path / f'epoch_{n}.pth'
        path.write_bytes(b'x')
        os.utime(path, (n, n))
    (tmp_path / 'best_accuracy_epoch_11.pth').write_bytes(b'x')  # not a resume point
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text(str(tmp_path / 'epoch_2.pth'))
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')
    newest = str(tmp_path / 'epoch_10.pth')
    assert warnings == []
    for torn in ('', str(tmp_path / 'epoch_99.pth')):  # emptied by a crash; stale
        pointer.write_text(torn)
        assert latest_checkpoint(str(tmp_path)) == newest
    assert len(warnings) == 2 and all(str(pointer) in w and newest in w for w in warnings)
    pointer.unlink()
    assert latest_checkpoint(str(tmp_path)) == newest
    assert len(warnings) == 2  # no pointer: nothing passed over
    os.utime(tmp_path / 'epoch_2.pth', (50, 50))  # the newest file wins over the largest N
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'epoch_2.pth')
    os.utime(tmp_path / 'epoch_10.pth', (50, 50))  # equal times: the larger N
    assert latest_checkpoint(str(tmp_path)) == newest
