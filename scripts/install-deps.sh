#!/usr/bin/env bash
# Installs what polytask needs to build, test and run on Debian 12, from Debian's packages.
# The CUDA toolkit is optional: when nvcc is present (e.g. /usr/local/cuda) the CUDA backend is
# compiled too. Only missing packages are installed, so a second run costs nothing.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libopenblas-openmp-dev     # the double-precision reference GEMM (the oracle of the tests) and a benchmark baseline; OpenMP build: one thread pool with ours
  libgtest-dev libgmock-dev  # tests
  libbenchmark-dev           # bench/
  zlib1g-dev                 # gzip-compressed IDX files
  libtomlplusplus-dev        # model config files
  libcairo2-dev fonts-dejavu-core  # the pictures (training curves, prediction grids): PNG and SVG with real text
  nlohmann-json3-dev         # reading metrics.jsonl back for the pictures
  dataset-fashion-mnist      # the main job's default data, /usr/share/datasets/fashion-mnist
  zstd                       # bench/gpu_prepare.sh packs the GPU window's programs with it
  clang libclang-rt-14-dev   # scripts/ci-reliability.sh: libFuzzer and the sanitizer runtimes
  libomp-14-dev              # OpenMP for clang (the fuzz build)
  libopenmpi-dev openmpi-bin # data-parallel training (mpirun -np N polytask train) and its tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Interoperability checks only (tests open our checkpoints with Python's safetensors); the
# product itself needs no Python. Those tests skip with the reason when this is unavailable.
if ! python3 -c "import safetensors, numpy" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check safetensors numpy 2>/dev/null ||
    echo "install-deps: could not pip-install safetensors/numpy; the Python interop tests will skip"
fi
# TensorBoard's own event-file reader checks the files polytask writes (tests/watch).
if ! python3 -c "import tensorboard" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check tensorboard 2>/dev/null ||
    echo "install-deps: could not pip-install tensorboard; the TensorBoard interop test will skip"
fi
