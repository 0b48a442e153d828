"""Running the repository's tools in a subprocess, as a user would (shared by the tests)."""
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(*args, check: bool = True, env: dict = None, threads: int = None):
    """``python ARGS...`` from the repository root; raise with its output if it fails.

    ``threads`` pins OpenMP/MKL to that many threads (exact-resume tests use 1: with several,
    MKL may change its thread count under load and the last bit of a sum with it).
    """
    env = dict(os.environ, **(env or {}))
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                         env=env)
    if check and out.returncode != 0:
        raise AssertionError(f'{args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}')
    return out


def load_tool(relpath: str):
    """Import a script of the repository (e.g. ``'tools/generate_data.py'``) as a module, so a
    test can call its ``main`` in-process."""
    name = osp.splitext(osp.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def record_figures(monkeypatch, module) -> list:
    """Make ``module.Figure`` (a module that draws with matplotlib's ``Figure``) append every
    figure it creates to the returned list, so a test can inspect what was drawn."""
    figures = []

    class RecordedFigure(module.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            figures.append(self)

    monkeypatch.setattr(module, 'Figure', RecordedFigure)
    return figures
