"""mmsase: SASE attention search on the OpenMMLab stack.

``pip install .`` copies ``configs/`` (configs, READMEs and metafiles), ``tools/`` and
``model-index.yml`` into the built package's ``mmsase/.mim`` so that ``mim train mmsase CONFIG``,
``mim search mmsase`` and ``mmsase.config_path(NAME)`` work from an installed package; an
editable install links them from the source tree instead.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ['configs', 'tools', 'model-index.yml']


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(HERE, 'mmsase', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def parse_requirements(path: str) -> list:
    """Requirements of a requirements file, following ``-r`` includes."""
    requirements = []
    with open(osp.join(HERE, path), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                included = osp.join(osp.dirname(path), line[3:].strip())
                requirements += parse_requirements(included)
            else:
                requirements.append(line)
    return requirements


def link_mim_files() -> None:
    """Editable installs: ``mmsase/.mim/{configs,tools,model-index.yml}`` link to the source
    tree."""
    mim_dir = osp.join(HERE, 'mmsase', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        os.symlink(osp.relpath(src, mim_dir), dst)


class BuildPyWithMim(build_py):
    """Regular builds: copy configs and tools into the *built* package's ``.mim``.

    The source tree is left alone, so a wheel build never replaces the editable links
    with stale copies.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        mim_dir = osp.join(self.build_lib, 'mmsase', '.mim')
        for name in MIM_FILES:
            src, dst = osp.join(HERE, name), osp.join(mim_dir, name)
            if not osp.exists(src):
                continue
            if osp.lexists(dst):
                shutil.rmtree(dst) if osp.isdir(dst) and not osp.islink(dst) else os.remove(dst)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            else:
                os.makedirs(mim_dir, exist_ok=True)
                shutil.copyfile(src, dst)


if __name__ == '__main__':
    if any(arg in sys.argv for arg in ('develop', 'editable_wheel')):
        link_mim_files()
    setup(
        name='mmsase',
        version=read_version(),
        description='SASE: searching architectures for squeeze-and-excitation '
        'operations, with OpenMMLab detection and classification',
        long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        keywords='computer vision, attention, neural architecture search, '
        'object detection, image classification',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'demo')),
        include_package_data=True,
        # the C++ kernels, compiled on first use
        package_data={'mmsase': ['models/*/csrc/*.cpp', 'models/*/csrc/*.h']},
        python_requires='>=3.9',
        license='Apache License 2.0',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
            'mim': parse_requirements('requirements/mminstall.txt'),
        },
        cmdclass={'build_py': BuildPyWithMim},
        zip_safe=False)
