#!/usr/bin/env bash
# bench/test_gpu_window.sh — the CTest check (gpu_window_complete, bench/CMakeLists.txt) that
# bench/gpu_prepare.sh makes a complete GPU window from a build: every program the GPU check
# runs is there, every shared library they link resolves from the folder or the CUDA toolkit
# (ldd with only those on LD_LIBRARY_PATH, as on the GPU machine; a library from /usr/lib is
# flagged unless it is on the assumed list in bench/gpu_window_lib.sh), Fashion-MNIST and
# BUILD.txt are there, and the folder is within its size limit. It reuses the build under test
# (everything is built before CTest runs, so ninja has nothing to do) and skips the ptxas report
# (which would rewrite a tracked file): a few seconds, not a second CUDA build.
set -euo pipefail

usage() {
  echo "Usage: bash bench/test_gpu_window.sh --build-dir DIR"
  echo "Prepares DIR/gpu-window from the configured build DIR (no ptxas report) and checks it."
}
build_dir=""
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --build-dir) build_dir=${2:?--build-dir needs a folder}; shift ;;
    *) echo "test_gpu_window: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$build_dir" ] || { echo "test_gpu_window: --build-dir is required" >&2; exit 2; }
build_dir=$(readlink -f "$build_dir")
cd "$(dirname "$0")/.."
# shellcheck source=bench/gpu_window_lib.sh
. bench/gpu_window_lib.sh
window=$build_dir/gpu-window

# gpu_prepare.sh fails on a missing library or an oversized folder itself; checked again below
# so that this test states each property on its own.
BUILD_DIR=$build_dir WINDOW_DIR=$window PTXAS=0 bash bench/gpu_prepare.sh

# What travels is the archive: unpack it as gpu_check.sh does and check that.
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
window_unpack "$window" "$unpacked"
fail=0
while read -r target; do
  exe=$target
  [ "$target" != polytask_cli ] || exe=polytask
  [ -x "$unpacked/bin/$exe" ] || { echo "test_gpu_window: bin/$exe missing from $window/$WINDOW_ARCHIVE (target $target)"; fail=1; }
done < <(window_targets "$build_dir")
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz \
         t10k-labels-idx1-ubyte.gz; do
  [ -s "$window/data/fashion-mnist/$f" ] || { echo "test_gpu_window: $window/data/fashion-mnist/$f missing"; fail=1; }
done
# The commit it was built from (a checkout without .git records "unknown").
expected=$(git rev-parse HEAD 2>/dev/null || echo unknown)
grep -qx "commit: $expected" "$window/BUILD.txt" ||
  { echo "test_gpu_window: $window/BUILD.txt does not record commit $expected"; fail=1; }
window_check_libs "$unpacked" || fail=1
# The carried zstd must run from tools/ alone (plus the assumed C library).
env -i LD_LIBRARY_PATH="$window/tools" "$window/tools/zstd" --version >/dev/null ||
  { echo "test_gpu_window: $window/tools/zstd does not run with only tools/ on LD_LIBRARY_PATH"; fail=1; }
kib=$(window_kib "$window")
echo "test_gpu_window: $window holds $((kib / 1024)) MiB (limit $WINDOW_MAX_MIB MiB)"
[ "$kib" -le $((WINDOW_MAX_MIB * 1024)) ] || { echo "test_gpu_window: over the size limit"; fail=1; }
[ "$fail" -eq 0 ] && echo "test_gpu_window: complete"
exit "$fail"
