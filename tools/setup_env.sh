#!/usr/bin/env bash
# Create (or complete) the development environment in .venv/ at the repository root.
#
# Idempotent: each step checks whether it is already done. mmcv 2.1.0 has no wheel for
# torch 2.14, so it is built once from its sdist (CPU ops, C++20) into a wheel kept in
# $MMSASE_CACHE (default ~/.cache/mmsase), keyed by mmcv, torch and Python versions.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMSASE_VENV:-$ROOT/.venv}"
CACHE="${MMSASE_CACHE:-$HOME/.cache/mmsase}"
PYTHON="${PYTHON:-python3}"

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0

log() { printf '[setup_env] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
PYVER="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"

have() { "$PY" - "$@" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, _, want = spec.partition('==')
    try:
        got = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if want and got.split('+')[0] != want:
        sys.exit(1)
PYEOF
}

# mmcv's setup.py imports pkg_resources (removed in setuptools 82); 77.0.3 is the oldest that
# understands the license metadata of current packages.
if ! have "setuptools" || ! "$PY" -c 'import pkg_resources' 2>/dev/null \
   || ! "$PY" -c 'import setuptools,sys; v=tuple(map(int,setuptools.__version__.split(".")[:2])); sys.exit(not ((77,0)<=v<(82,0)))'; then
  log "installing build tools"
  "${PIP[@]}" install -q "setuptools>=77.0.3,<82" wheel ninja
fi

if ! have "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"; then
  log "installing torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION"
  "${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

if ! have "mmcv==$MMCV_VERSION" || ! "$PY" -c 'import mmcv.ops' 2>/dev/null; then
  WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PYVER"
  mkdir -p "$WHEEL_DIR"
  WHEEL="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$WHEEL" ]; then
    log "building mmcv $MMCV_VERSION with CPU ops (about 10 minutes on 2 cores; done once, cached in $WHEEL_DIR)"
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers require C++20; mmcv 2.1.0 hard-codes an older standard.
    sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$SRC/setup.py"
    grep -q 'c++20' "$SRC/setup.py" || { log "could not raise the C++ standard in mmcv's setup.py"; exit 1; }
    (cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
       "${PIP[@]}" wheel -q --no-build-isolation --no-deps . -w "$BUILD/dist")
    built="$(ls "$BUILD"/dist/mmcv-*.whl | head -n1)"
    cp "$built" "$WHEEL_DIR/.partial"
    mv "$WHEEL_DIR/.partial" "$WHEEL_DIR/$(basename "$built")"   # atomic: no half wheel in the cache
    WHEEL="$WHEEL_DIR/$(basename "$built")"
  else
    log "using cached mmcv wheel $WHEEL"
  fi
  "${PIP[@]}" install -q --no-deps "$WHEEL"
fi

log "installing requirements"
"${PIP[@]}" install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements/tests.txt"
# Grad-CAM: without its dependencies (see requirements/optional.txt)
"${PIP[@]}" install -q --no-deps -r "$ROOT/requirements/optional.txt"
# openmim pulls a package that pins an old setuptools; put ours back.
"${PIP[@]}" install -q "setuptools>=77.0.3,<82"

if ! have mmsase; then
  log "installing mmsase (editable)"
  "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
fi
# mim and mmengine locate an installed package as <dist location>/<name> (pkg_resources);
# a PEP 660 editable install has no such folder, so give it one: a link to the source.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ ! -e "$SITE/mmsase" ]; then
  ln -s "$ROOT/mmsase" "$SITE/mmsase"
fi
# mmsase's C++ kernels compile on first use (about a minute each, then cached in
# ~/.cache/torch_extensions); build them now so that the first demo or training does not wait.
# A failed build is not fatal: the eager PyTorch paths compute the same values.
log "building mmsase's C++ kernels (cached in ~/.cache/torch_extensions)"
"$PY" - <<'PY' || log "the kernels were not built; mmsase will use its eager paths"
from mmsase.models.sase import fused
from mmsase.models.search_space import conv_stacks, moment_mixture, power_sums
for module in (fused, conv_stacks, moment_mixture, power_sums):
    if module.EXTENSION.load() is None:
        raise SystemExit(f'{module.__name__}: kernel not built')
PY
log "environment ready: $VENV"
