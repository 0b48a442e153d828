"""C++ extensions compiled on first use, with an eager fallback when they cannot be built.

mmsase ships its CPU kernels as sources (no compiled wheel to match every torch build) and
compiles each with :func:`torch.utils.cpp_extension.load` the first time it is needed. The
build is cached in ``~/.cache/torch_extensions`` (or ``$TORCH_EXTENSIONS_DIR``): about a minute
once, ~0.3 s per later process. A failed build (no compiler, …) is logged once as a warning
and not retried in that process; callers then run their eager PyTorch path.
"""
import hashlib
import logging
import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

logger = logging.getLogger(__name__)

#: Environment variable: set to a non-empty value other than ``0`` to run every op on its
#: eager torch path, none of the C++ kernels.
DISABLE_ENV = 'MMSASE_NO_FUSED'


def kernels_disabled() -> bool:
    """Whether ``MMSASE_NO_FUSED`` asks for the eager paths."""
    return os.environ.get(DISABLE_ENV, '') not in ('', '0')


def dispatch_mode_active() -> bool:
    """Whether a ``TorchDispatchMode`` (e.g. a FLOP counter) is active: it would not see the
    work of a kernel that reads raw memory, so the kernels step aside."""
    import torch
    stack_len = getattr(torch._C, '_len_torch_dispatch_stack', None)
    return bool(stack_len and stack_len())


@contextmanager
def interpreter_tools_first() -> Iterator[None]:
    """Put the interpreter's own ``bin`` directory first on ``PATH`` while building.

    torch runs whichever ``ninja`` ``PATH`` finds first, and ninja versions keep their
    build logs in incompatible formats: ``.venv/bin/python`` run directly (``make``) and the
    same python in an activated virtualenv would find two ninjas and rebuild every kernel
    at each switch. The ninja installed beside the interpreter, if any, is used either way.
    """
    original = os.environ.get('PATH', '')
    bin_dir = os.path.dirname(sys.executable)
    os.environ['PATH'] = os.pathsep.join([bin_dir, original]) if original else bin_dir
    try:
        yield
    finally:
        os.environ['PATH'] = original


class LazyExtension:
    """One C++ source, built and imported on the first :meth:`load`.

    Args:
        source: path of the ``.cpp`` file (symbolic links are resolved: an editable install
            reaches a file by two paths, and the build cache must not flip between them).
        headers: the local headers ``source`` includes (their contents tag the build).
        prefix: module name prefix; the name is tagged with the source's location so that two
            checkouts do not rebuild over each other.
        what: what the extension is, for the warning if it cannot be built.
        logger_name: the logger that warning goes to (the caller's module, so that it reads as
            part of the feature that falls back).
    """

    def __init__(self,
                 source: str,
                 prefix: str,
                 what: str,
                 logger_name: Optional[str] = None,
                 headers: Sequence[str] = (),
                 extra_cflags: Sequence[str] = ('-O3', '-fopenmp')):
        self.source = os.path.realpath(source)
        self.headers = [os.path.realpath(h) for h in headers]
        self.prefix = prefix
        self.what = what
        self.logger = logging.getLogger(logger_name) if logger_name else logger
        self.extra_cflags = list(extra_cflags)
        self._module = None
        self.failed = False
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``<prefix>_<hash>``: the hash covers the source's location and the contents of the
        headers it includes (torch's build cache checks the source's contents only, so a
        changed header would otherwise reuse a stale build)."""
        digest = hashlib.sha1(self.source.encode())
        for header in self.headers:
            with open(header, 'rb') as f:
                digest.update(f.read())
        return f'{self.prefix}_{digest.hexdigest()[:8]}'

    def load(self, verbose: bool = False):
        """The compiled module, building it on the first call; ``None`` if that fails."""
        if self._module is not None or self.failed:
            return self._module
        with self._lock:
            if self._module is None and not self.failed:
                try:
                    if not os.path.isfile(self.source):  # an install that did not ship it
                        raise FileNotFoundError(f'{self.source} is missing')
                    from torch.utils.cpp_extension import load
                    with interpreter_tools_first():
                        self._module = load(name=self.name, sources=[self.source],
                                            extra_cflags=self.extra_cflags,
                                            extra_ldflags=['-fopenmp'], verbose=verbose)
                except Exception as err:  # compiler missing, build error, ...
                    self.failed = True
                    message = str(err).strip()
                    self.logger.warning('mmsase: cannot build the %s (%s: %s); using the eager '
                                        'path', self.what, type(err).__name__,
                                        message.splitlines()[-1] if message else '')
        return self._module

    def reset(self) -> None:
        """Forget the loaded module and any failure (tests)."""
        self._module = None
        self.failed = False
