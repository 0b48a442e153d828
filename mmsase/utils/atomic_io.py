"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import os
import os.path as osp
import tempfile
from typing import Union


def atomic_write(path: Union[str, os.PathLike], data: Union[bytes, str],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory (created if
    missing), which replaces ``path`` only once complete. On failure the temporary file is
    removed and ``path`` is untouched. The file keeps the mode of the one it replaces, or
    gets the usual mode of a new file (0666 less the umask)."""
    path = os.fspath(path)
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode(encoding)
    fd, tmp_path = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, _mode_for(path))  # mkstemp makes the file private (0600)
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise


def _mode_for(path: str) -> int:
    if osp.exists(path):
        return os.stat(path).st_mode & 0o777
    umask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask
