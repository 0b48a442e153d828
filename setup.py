"""mmsase: SASE attention search on the OpenMMLab stack.

``pip install .`` copies ``configs/`` and ``tools/`` into ``mmsase/.mim`` so that
``mim train mmsase CONFIG`` and ``mmsase.config_path(NAME)`` work from an installed package;
an editable install links them instead.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

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


def add_mim_extension() -> None:
    """Ship configs and tools inside the package (``mmsase/.mim``), as mmdet does."""
    editable = any(arg in sys.argv for arg in ('develop', 'editable_wheel'))
    mode = 'symlink' if editable else 'copy'
    mim_dir = osp.join(HERE, 'mmsase', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        dst = osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
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
        package_data={'mmsase': ['.mim/**/*', '.mim/*', 'configs/*.py']},
        python_requires='>=3.9',
        license='Apache License 2.0',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
            'mim': parse_requirements('requirements/mminstall.txt'),
        },
        zip_safe=False)
