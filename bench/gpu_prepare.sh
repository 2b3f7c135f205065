#!/usr/bin/env bash
# bench/gpu_prepare.sh — runs HERE, without a GPU: builds for sm_90 (Release, no -Werror, its
# own build folder) only what the GPU check needs, regenerates the ptxas report, and gathers
# into one git-ignored folder (.gpu-window/) everything the GPU machine lacks: the programs,
# the shared libraries its image may not have, Fashion-MNIST, and the commit they were built
# from. One device call then runs bench/gpu_check.sh with that folder carried (bench/README.md,
# "The GPU window"). Why build here: a 15-minute GPU window cannot afford a 5-minute build, and
# the GPU image has neither our libraries nor a network.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash bench/gpu_prepare.sh [--build-dir DIR] [--window DIR] [--no-ptxas]

Builds (Release, sm_90, no -Werror) the real-GPU test binaries (test_cuda_*,
test_engine_cuda_*), polytask, polytask_train_bench and bench_gpu_* in BUILD_DIR, regenerates
bench/results/ptxas-sm90.txt, and fills WINDOW (deleted first) with:
  programs.tar.zst      bin/: the programs (stripped); lib/: the shared libraries they need
              that are neither in the CUDA toolkit nor assumed on the GPU image (see
              bench/gpu_window_lib.sh); checked unpacked in BUILD_DIR/gpu-window-programs
  tools/      zstd and its libraries, to unpack them where the image has no zstd
  data/fashion-mnist/   the four Fashion-MNIST .gz files
  ptxas-sm90.txt        the kernels' register/spill report
  BUILD.txt   commit, dirty state, date, compiler versions, the programs and libraries
Fails when the folder is over 60 MiB or a library would not resolve there.

Options (also as environment variables):
  --build-dir DIR   BUILD_DIR    [build-gpu]; an existing configured folder is reused
                                 (incremental), whatever launcher it was configured with
  --window DIR      WINDOW_DIR   [.gpu-window]
  --no-ptxas        PTXAS=0      keep bench/results/ptxas-sm90.txt as it is
Environment: JOBS [nproc]; CUDA_ARCHS [90]; FASHION_MNIST_DIR
[/usr/share/datasets/fashion-mnist]; CMAKE_CXX_COMPILER_LAUNCHER / CMAKE_CUDA_COMPILER_LAUNCHER
(e.g. ccache) for a fresh configure; CCACHE_DISABLE=1 to time a clean build honestly.
EOF
}

die() { echo "gpu_prepare: $*" >&2; exit 1; }

cd "$(dirname "$0")/.."
# shellcheck source=bench/gpu_window_lib.sh
. bench/gpu_window_lib.sh

BUILD_DIR=${BUILD_DIR:-build-gpu}
WINDOW_DIR=${WINDOW_DIR:-$WINDOW_DIR_DEFAULT}
PTXAS=${PTXAS:-1}
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --build-dir) BUILD_DIR=${2:?--build-dir needs a folder}; shift ;;
    --window) WINDOW_DIR=${2:?--window needs a folder}; shift ;;
    --no-ptxas) PTXAS=0 ;;
    *) echo "gpu_prepare: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
JOBS=${JOBS:-$(nproc)}
CUDA_ARCHS=${CUDA_ARCHS:-90}
FASHION_MNIST_DIR=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
FASHION_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
               t10k-labels-idx1-ubyte.gz)
T0=$(date +%s)
say() { echo "[gpu_prepare +$(($(date +%s) - T0))s] $*"; }

command -v zstd >/dev/null || die "no zstd on PATH: it packs the programs (apt-get install zstd)"
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
  die "no nvcc (neither on PATH nor /usr/local/cuda/bin): the GPU programs need the CUDA toolkit"
for f in "${FASHION_FILES[@]}"; do
  [ -f "$FASHION_MNIST_DIR/$f" ] ||
    die "$FASHION_MNIST_DIR/$f missing (bash scripts/install-deps.sh installs dataset-fashion-mnist)"
done

# The commit first: regenerating the ptxas report below rewrites a tracked file.
COMMIT=unknown DIRTY=unknown
if git rev-parse HEAD >/dev/null 2>&1; then
  COMMIT=$(git rev-parse HEAD)
  if [ -z "$(git status --porcelain --untracked-files=no)" ]; then DIRTY=clean
  else DIRTY="dirty ($(git status --porcelain --untracked-files=no | wc -l) modified tracked files)"; fi
fi

# ---- configure (once) and build the GPU targets only
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  say "configure $BUILD_DIR (Release, sm_$CUDA_ARCHS, no -Werror)"
  launchers=()
  [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] ||
    launchers+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER")
  [ -z "${CMAKE_CUDA_COMPILER_LAUNCHER:-}" ] ||
    launchers+=("-DCMAKE_CUDA_COMPILER_LAUNCHER=$CMAKE_CUDA_COMPILER_LAUNCHER")
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPOLYTASK_WARNINGS_AS_ERRORS=OFF -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" "${launchers[@]}" \
    >"$BUILD_DIR.configure.log" 2>&1 || { tail -n 20 "$BUILD_DIR.configure.log" >&2;
      die "configure failed (log: $BUILD_DIR.configure.log)"; }
  rm -f "$BUILD_DIR.configure.log"
fi
mapfile -t TARGETS < <(window_targets "$BUILD_DIR")
printf '%s\n' "${TARGETS[@]}" | grep -q '^test_cuda_' ||
  die "$BUILD_DIR has no test_cuda_* target: configured without CUDA? (delete it and run again)"

ptxas_pid=""
if [ "$PTXAS" = 1 ]; then
  # In parallel with the build: nvcc per kernel file, through ccache when there (ccache replays
  # ptxas' -v report on a hit), so the report costs little once the cache is warm.
  say "ptxas report -> bench/results/ptxas-sm90.txt (in the background)"
  bash bench/ptxas_report.sh "$CUDA_ARCHS" >"$BUILD_DIR/ptxas-sm$CUDA_ARCHS.txt" 2>"$BUILD_DIR/ptxas.log" &
  ptxas_pid=$!
fi
say "build ${#TARGETS[@]} targets in $BUILD_DIR with $JOBS jobs"
ninja -C "$BUILD_DIR" -j "$JOBS" "${TARGETS[@]}" >"$BUILD_DIR/gpu_prepare.build.log" 2>&1 || {
  tail -n 30 "$BUILD_DIR/gpu_prepare.build.log" >&2
  die "build failed (log: $BUILD_DIR/gpu_prepare.build.log)"; }
BUILD_S=$(($(date +%s) - T0))
if [ -n "$ptxas_pid" ]; then
  wait "$ptxas_pid" || { cat "$BUILD_DIR/ptxas.log" >&2; die "bench/ptxas_report.sh failed"; }
  cp "$BUILD_DIR/ptxas-sm$CUDA_ARCHS.txt" "bench/results/ptxas-sm$CUDA_ARCHS.txt"
  say "ptxas: $(tail -n1 "bench/results/ptxas-sm$CUDA_ARCHS.txt")"
fi

# ---- gather: bin/ and lib/ into a staging folder in the build, checked there, then packed
STAGE=$BUILD_DIR/gpu-window-programs
rm -rf "$STAGE" "$WINDOW_DIR"
mkdir -p "$STAGE/bin" "$WINDOW_DIR/data/fashion-mnist" "$WINDOW_DIR/tools"
for t in "${TARGETS[@]}"; do
  case $t in  # where tests/, bench/ and cli/ CMakeLists put them
    polytask_cli) exe=$BUILD_DIR/cli/polytask ;;
    test_*) exe=$BUILD_DIR/tests/$t ;;
    *) exe=$BUILD_DIR/bench/$t ;;
  esac
  [ -x "$exe" ] || die "built target $t not found at $exe"
  # strip: the host symbol tables go; the device code (.nv_fatbin, with -lineinfo for
  # compute-sanitizer) stays.
  strip --strip-unneeded -o "$STAGE/bin/$(basename "$exe")" "$exe"
done
window_copy_libs "$STAGE/lib" "$STAGE"/bin/*
problems=$(window_check_libs "$STAGE") || { echo "$problems" >&2;
  die "$STAGE is incomplete: the libraries above would not resolve on the GPU machine"; }
tar -C "$STAGE" -cf - bin lib | zstd -q -6 --long=$WINDOW_ZSTD_LONG -T0 -o "$WINDOW_DIR/$WINDOW_ARCHIVE" ||
  die "packing $STAGE into $WINDOW_DIR/$WINDOW_ARCHIVE failed"
cp "$(command -v zstd)" "$WINDOW_DIR/tools/zstd"
window_copy_libs "$WINDOW_DIR/tools" "$WINDOW_DIR/tools/zstd"
for f in "${FASHION_FILES[@]}"; do cp "$FASHION_MNIST_DIR/$f" "$WINDOW_DIR/data/fashion-mnist/"; done
[ ! -f "bench/results/ptxas-sm$CUDA_ARCHS.txt" ] || cp "bench/results/ptxas-sm$CUDA_ARCHS.txt" "$WINDOW_DIR/"

{
  echo "commit: $COMMIT"
  echo "tree: $DIRTY"
  echo "built: $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -srm), configure + build step $BUILD_S s"
  echo "build: $BUILD_DIR, $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt"), CUDA architectures $(sed -n 's/^CMAKE_CUDA_ARCHITECTURES:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")"
  echo "nvcc: $( (nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version) | tail -n1)"
  echo "c++: $(c++ --version | head -n1)"
  echo "programs ($WINDOW_ARCHIVE, bin/): $(cd "$STAGE/bin" && ls | tr '\n' ' ')"
  echo "carried libraries ($WINDOW_ARCHIVE, lib/): $(cd "$STAGE/lib" && ls | tr '\n' ' ')"
  echo "unpacked size: $(($(window_kib "$STAGE") / 1024)) MiB"
  echo "assumed on the GPU image: $(tr '\n' ' ' <<<"$WINDOW_ASSUMED_LIBS") and the CUDA toolkit's libraries"
} >"$WINDOW_DIR/BUILD.txt"

kib=$(window_kib "$WINDOW_DIR")
echo "size: $((kib / 1024)) MiB ($kib KiB; limit $WINDOW_MAX_MIB MiB)" >>"$WINDOW_DIR/BUILD.txt"
[ "$kib" -le $((WINDOW_MAX_MIB * 1024)) ] ||
  die "$WINDOW_DIR holds $((kib / 1024)) MiB, over the $WINDOW_MAX_MIB MiB limit (du -sh $WINDOW_DIR/*)"
say "done: $WINDOW_DIR, ${#TARGETS[@]} programs, $((kib / 1024)) MiB; commit ${COMMIT:0:12} ($DIRTY)"
say "next: one device run, command 'bash bench/gpu_check.sh', carry [\"$WINDOW_DIR\"], timeout_s 540"
