# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the sourcing scripts
# bench/gpu_window_lib.sh — pieces shared by bench/gpu_prepare.sh (here, no GPU),
# bench/gpu_check.sh (on the GPU machine) and bench/test_gpu_window.sh (CI): where the window
# folder is, what it may weigh, which programs go into it, and which shared libraries the GPU
# machine's image is assumed to have. Sourced, not run.
#
# The GPU machine (device tool, kinds nvidia-h100-x1 / nvidia-h200, image 'cuda') is
# Ubuntu-like with Python 3.12 (glibc >= 2.36, a GCC 13+ libstdc++), the CUDA 13 toolkit under
# /usr/local/cuda, the driver's libcuda, PyTorch, compute-sanitizer and ncu; it has no network
# and, we assume, none of Debian's GoogleTest, Google Benchmark, OpenBLAS, toml++ libraries.
# So the folder carries every shared library our binaries need except:
#   * anything that resolves inside /usr/local/cuda (cudart, cuBLAS, cuBLASLt, cuDNN when the
#     toolkit has it; gpu_check.sh falls back to PyTorch's nvidia-* wheels for a missing one);
#   * the C runtime and C++ runtime every Linux with a compiler has (WINDOW_ASSUMED_LIBS below):
#     our binaries are built with GCC 12 against glibc 2.36, and newer ones are
#     backward-compatible;
#   * libcuda.so.1, the driver's own.
# Everything else — libgomp too (small; a GCC 12 libgomp is safe to load beside a newer libstdc++),
# zlib, OpenBLAS with libgfortran/libquadmath, toml++, Google Benchmark — is carried.

WINDOW_DIR_DEFAULT=.gpu-window
WINDOW_MAX_MIB=60          # the folder travels as a carried path; the whole tree must stay < 64 MiB
# bin/ and lib/ travel as one zstd archive: every program links the kernel library statically,
# so each carries the same fatbins (10-17 MB apiece for sm_90 alone, 165 MB in all; a build
# for CMake's five default architectures, as CI's gpu_window_complete test packs, 574 MB).
# zstd's long-range matching stores the repeats once if its window spans the whole tar: with
# --long=27 (128 MiB) the five-architecture programs packed to 31 MB and the folder went over
# its limit; with --long=30 (1 GiB; about as much memory to pack and unpack, which both
# machines have) to 21 MB, in seconds. zstd itself travels in tools/ (with its libraries) in
# case the GPU image lacks it.
WINDOW_ARCHIVE=programs.tar.zst
WINDOW_ZSTD_LONG=30
WINDOW_ASSUMED_LIBS='linux-vdso.so.1 ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libpthread.so.0
libdl.so.2 librt.so.1 libstdc++.so.6 libgcc_s.so.1 libcuda.so.1'

# The programs the GPU check runs, as build targets: every real-GPU test binary (not the
# _emulated copies), the CLI, the end-to-end benchmark and the GPU kernel benchmarks. Listed
# from the configured build (BUILD_DIR), so new tests and benchmarks are picked up unedited.
window_targets() {  # BUILD_DIR
  ninja -C "$1" -t targets all |
    sed -n 's/^\(test_cuda_[a-z0-9_]*\|test_engine_cuda_[a-z0-9_]*\|bench_gpu_[a-z0-9_]*\|polytask_cli\|polytask_train_bench\): .*/\1/p' |
    grep -v '_emulated$' | sort -u
}

window_lib_is_assumed() {  # SONAME
  local lib
  for lib in $WINDOW_ASSUMED_LIBS; do [ "$1" = "$lib" ] && return 0; done
  return 1
}

# Where the CUDA toolkit's libraries live here (the path ldd prints, resolved).
window_cuda_root() { readlink -f "${CUDA_HOME:-/usr/local/cuda}"; }

# window_copy_libs DEST PROGRAM...: copies into DEST every shared library the programs load
# (ldd, here) that is neither in the CUDA toolkit nor on the assumed list.
window_copy_libs() {
  local dest=$1 cuda name path real
  shift
  cuda=$(window_cuda_root)
  mkdir -p "$dest"
  for exe in "$@"; do ldd "$exe"; done | sed -n 's/^\s*\(\S*\) => \(\/\S*\).*/\1 \2/p' | sort -u |
    while read -r name path; do
      real=$(readlink -f "$path")
      case $real in "$cuda"/*) continue ;; esac
      window_lib_is_assumed "$name" && continue
      [ -e "$dest/$name" ] || cp "$real" "$dest/$name"
    done
}

# window_unpack WINDOW DEST: unpacks WINDOW's archive into DEST (bin/, lib/), with the
# system's zstd or the carried one.
window_unpack() {
  local window=$1 dest=$2 zstd=(zstd)
  command -v zstd >/dev/null || zstd=(env LD_LIBRARY_PATH="$window/tools" "$window/tools/zstd")
  mkdir -p "$dest"
  "${zstd[@]}" -q -d --long=$WINDOW_ZSTD_LONG -c "$window/$WINDOW_ARCHIVE" | tar -x -C "$dest"
}

# window_check_libs DIR: every shared library of every program in DIR/bin (an unpacked
# archive) must resolve, with only DIR/lib and the CUDA toolkit on LD_LIBRARY_PATH (what
# gpu_check.sh sets on the GPU machine), to DIR/lib, the CUDA toolkit, or the assumed list. Prints one line per
# problem ("<program>: <lib> <why>") and returns 1 when there is any; libcuda.so.1 may be
# missing (no driver here).
window_check_libs() {
  local window=$1 cuda problems=0 bin line name path real
  cuda=$(window_cuda_root)
  for bin in "$window"/bin/*; do
    while IFS= read -r line; do
      # "libfoo.so.1 => /path/libfoo.so.1 (0x...)", "libfoo.so.1 => not found", "/lib64/ld-linux..."
      name=$(awk '{print $1}' <<<"$line")
      path=$(sed -n 's/.*=> \([^ ]*\).*/\1/p' <<<"$line")
      [ -n "$name" ] || continue
      case $name in /*) name=$(basename "$name"); path=${path:-$name} ;; esac
      if [ "$path" = not ]; then
        [ "$name" = libcuda.so.1 ] && continue
        echo "$(basename "$bin"): $name not found in $window/lib or the CUDA toolkit"
        problems=$((problems + 1))
        continue
      fi
      [ -n "$path" ] || continue  # linux-vdso
      real=$(readlink -f "$path")
      case $real in
        "$(readlink -f "$window")"/*|"$cuda"/*) continue ;;
      esac
      window_lib_is_assumed "$name" && continue
      echo "$(basename "$bin"): $name resolves to $real, outside $window/lib and the CUDA toolkit, and is not an assumed system library (bench/gpu_window_lib.sh)"
      problems=$((problems + 1))
    done < <(env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$window/lib:$(window_cuda_root)/lib64" ldd "$bin" 2>&1)
  done
  [ "$problems" -eq 0 ]
}

# Size of a folder in KiB (apparent size: what travels).
window_kib() { du -sk --apparent-size "$1" | cut -f1; }
