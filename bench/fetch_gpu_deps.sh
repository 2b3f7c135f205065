#!/usr/bin/env bash
# Downloads, on a Debian 12 (bookworm) machine with network, the .deb files of the third-party
# libraries polytask builds against that the GPU machine's image lacks (it has nvcc, CMake and
# ninja, but no GoogleTest, Google Benchmark, OpenBLAS, toml++ or zlib headers, and no network).
# They land in .deps/ at the repository root (git-ignored); carry that folder to the GPU machine,
# where bench/gpu_suite.sh unpacks them into a private prefix (dpkg -x, nothing is installed)
# and configures with -DPOLYTASK_DEPS_ROOT=<prefix>. See bench/README.md, "GPU suite".
#
# It also copies Fashion-MNIST (Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist,
# four .gz files, ~30 MB) into .deps/fashion-mnist/, for bench/gpu_train_report.sh on the GPU
# machine, whose image has no data sets (bench/README.md, "End-to-end GPU training benchmark").
# The whole working tree that travels must stay under 64 MiB: the total is printed last.
#
# Usage: bash bench/fetch_gpu_deps.sh              (DEPS_DIR=... to download elsewhere)
#        bash bench/fetch_gpu_deps.sh --data-only  (only the Fashion-MNIST copy; no apt)
set -euo pipefail
cd "$(dirname "$0")/.."
deps_dir=${DEPS_DIR:-.deps}
fashion_src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

# Fashion-MNIST into $deps_dir/fashion-mnist (skipped with a warning when this machine lacks it).
copy_fashion_mnist() {
  local files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
               t10k-labels-idx1-ubyte.gz)
  local f missing=()
  for f in "${files[@]}"; do [ -f "$fashion_src/$f" ] || missing+=("$f"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "fetch_gpu_deps: WARNING: $fashion_src lacks ${missing[*]}: no Fashion-MNIST for the GPU" \
         "training benchmark (apt-get install dataset-fashion-mnist, or scripts/fetch-data.sh" \
         "and FASHION_MNIST_DIR=data/fashion-mnist)" >&2
    return 0
  fi
  mkdir -p "$deps_dir/fashion-mnist"
  for f in "${files[@]}"; do cp -f "$fashion_src/$f" "$deps_dir/fashion-mnist/$f"; done
  echo "fetch_gpu_deps: Fashion-MNIST from $fashion_src in $deps_dir/fashion-mnist/:" \
       "$(du -sh "$deps_dir/fashion-mnist" | cut -f1)"
}

report_total() {
  local kib
  kib=$(du -sk "$deps_dir" | cut -f1)
  echo "fetch_gpu_deps: $deps_dir/ holds $(awk -v k="$kib" 'BEGIN { printf "%.1f MiB", k / 1024 }')" \
       "(carry limit: 64 MiB for the whole working tree, tracked files included)"
  if [ "$kib" -gt $((60 * 1024)) ]; then
    echo "fetch_gpu_deps: WARNING: over 60 MiB; the tree may not travel" >&2
  fi
}

if [ "${1:-}" = "--data-only" ]; then
  copy_fashion_mnist
  report_total
  exit 0
fi

packages=(
  libgtest-dev libgmock-dev          # tests (static libs + CMake config; GMock targets too)
  libbenchmark-dev libbenchmark1debian   # bench/ (headers + CMake config; the runtime .so)
  libopenblas-openmp-dev libopenblas0-openmp  # CPU reference GEMM, OpenMP build (cblas.h, .so)
  libgfortran5 libquadmath0          # libopenblas.so.0 needs them; unused if the image has them
  libtomlplusplus-dev libtomlplusplus3   # model config files (headers + CMake config; the .so)
  zlib1g-dev zlib1g                  # gzip IDX files (the headers; libz.so's target lives in zlib1g)
)
# Not carried: libgomp1 and libstdc++6 come with the image's g++ (nvcc needs one), and a GCC 12
# libgomp ahead of a newer compiler's own could lack symbols that compiler emits.

if ! command -v apt-get >/dev/null || ! grep -q 'bookworm\|VERSION_ID="12"' /etc/os-release; then
  echo "fetch_gpu_deps: needs Debian 12 (bookworm) with apt-get: the .debs must match the" \
       "libraries CMake's configs describe" >&2
  exit 1
fi

# apt-get download needs package lists; fetch them once if this machine has none.
if ! apt-cache show "${packages[0]}" >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
fi

mkdir -p "$deps_dir"
rm -f "$deps_dir"/*.deb
sandbox=()
[ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)  # root: no '_apt' permission warning
(cd "$deps_dir" && apt-get download -q "${sandbox[@]}" "${packages[@]}")
# Plain file names (an epoch's ':' arrives as '%3a'): safe for any copy tool; dpkg -x ignores them.
for f in "$deps_dir"/*.deb; do
  clean=$(basename "$f" | sed 's/%3a/_/g; s/[^A-Za-z0-9._-]/_/g')
  [ "$clean" = "$(basename "$f")" ] || mv -f "$f" "$deps_dir/$clean"
done
echo "fetch_gpu_deps: $(ls "$deps_dir"/*.deb | wc -l) packages in $deps_dir/:"
ls -l "$deps_dir"/*.deb | awk '{printf "  %8.1f KiB  %s\n", $5/1024, $NF}'
echo "fetch_gpu_deps: .debs total $(du -ch "$deps_dir"/*.deb | tail -n1 | cut -f1)"
copy_fashion_mnist
report_total
