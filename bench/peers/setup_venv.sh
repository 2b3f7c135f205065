#!/usr/bin/env bash
# Creates the CPU peers' virtual environment (git-ignored, several GB, never in CI):
# TensorFlow-CPU 2.21 with Keras 3, and PyTorch 2.x from PyPI.
#
#   bench/peers/setup_venv.sh            # into .peers-venv/ at the repository root
#   PEERS_VENV=/elsewhere bench/peers/setup_venv.sh
#
# PyPI's Linux torch wheel brings NVIDIA's CUDA libraries as dependencies (about 3 GB); they
# are not used here (the peers run on the CPU), but the wheel will not import without them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${PEERS_VENV:-$ROOT/.peers-venv}"
PYTHON="${PYTHON:-python3}"
TF_VERSION="${TF_VERSION:-2.21.0}"
TORCH_VERSION="${TORCH_VERSION:-2.15.0}"

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "tensorflow-cpu==$TF_VERSION" "torch==$TORCH_VERSION" numpy
"$VENV/bin/python" - <<'PY'
import tensorflow as tf, keras, torch
print(f"peers ready: tensorflow {tf.__version__}, keras {keras.__version__}, torch {torch.__version__}")
PY
