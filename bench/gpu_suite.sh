#!/usr/bin/env bash
# bench/gpu_suite.sh — the whole GPU check in one command, for an NVIDIA (H100) machine:
# configure + build (Release, warnings as errors), the whole CTest suite, the GPU benchmarks
# (bench_gpu_*), and compute-sanitizer memcheck + racecheck over every real GPU test binary.
# Logs and a one-screen summary.md go to bench/results/gpu-<UTC date>-<short commit>/ (or
# $RESULTS_DIR), and, when $OUT is set (the device tool), into $OUT as at most 3 files. The
# summary is printed last; the exit status is non-zero when any stage failed or found a problem.
# Run `bash bench/gpu_suite.sh --help` for the options; bench/README.md ("GPU suite") for how to
# run it on the device machine.
#
# Generic on purpose, so later issues reuse it unchanged: GPU test binaries are whatever the
# build made as test_cuda_* / test_engine_cuda_* (not *_emulated), benchmarks whatever it made as
# bench_gpu_*, and vendor ratios are any benchmark counter whose name contains "vs_" or "ratio".
#
# Design notes.
# * Dependencies: the device image has nvcc, CMake and ninja but (probably) not GoogleTest,
#   Google Benchmark, OpenBLAS, toml++ or the zlib headers, and no network. We build there from
#   source against Debian 12 .debs fetched here by bench/fetch_gpu_deps.sh (.deps/, ~14 MB,
#   carried), unpacked with dpkg -x into a private prefix (never into /), and configure with
#   -DPOLYTASK_DEPS_ROOT. Alternatives considered: carrying a build tree made here (needs the
#   same paths on both machines, cannot run gtest discovery against the GPU at build time, and
#   ships ~100s of MB); vendoring sources via FetchContent (no network there, and it would make
#   the normal build differ from CI's). The .debs are Debian 12's (glibc 2.36, GCC 12), which
#   run on any newer glibc/libstdc++; only libraries the system lacks are put on
#   LD_LIBRARY_PATH, so none shadows the image's own (libgomp, libz, ...).
# * Order: build, tests, benchmarks, sanitizers. The sanitizers are last because they are the
#   slowest and the easiest to cut short: every stage runs under one deadline (SUITE_BUDGET)
#   so the summary is always written and printed before the device tool's 10-minute limit.
# * A stage that fails does not stop the later ones (unless they need its output).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash bench/gpu_suite.sh [options]

Builds (Release, -Werror), runs the whole CTest suite, the GPU benchmarks and compute-sanitizer
(memcheck, racecheck) over the GPU test binaries; writes logs + summary.md; prints the summary.

Options (each also as an environment variable):
  --help                 this text
  --skip-tests           SKIP_TESTS=1       do not run ctest
  --skip-bench           SKIP_BENCH=1       do not run bench/gpu/bench_gpu_*
  --skip-sanitizer       SKIP_SANITIZER=1   do not run compute-sanitizer
  --quick                                   = --skip-sanitizer
  --results-dir DIR      RESULTS_DIR=DIR    default bench/results/gpu-<UTC date>-<short commit>
  --build-dir DIR        BUILD_DIR=DIR      default build-gpu-suite (reused: incremental)
  --fresh                FRESH=1            delete the build directory first

Environment:
  CUDA_ARCHS=90            -DCMAKE_CUDA_ARCHITECTURES
  WERROR=ON                -DPOLYTASK_WARNINGS_AS_ERRORS
  JOBS=$(nproc)            build parallelism; CTEST_JOBS (default JOBS) for ctest -j
  CMAKE_ARGS="..."         extra configure arguments (word-split)
  BUILD_TARGETS="a b"      build only these targets (default: all)
  CTEST_ARGS="..."         extra ctest arguments, e.g. "-R Cuda" (word-split)
  CTEST_TEST_TIMEOUT=300   ctest --timeout per test (s)
  USE_DEPS=auto|1|0        unpack .deps/*.deb into DEPS_ROOT (auto: when a library is missing)
  DEPS_DIR=.deps  DEPS_ROOT=/tmp/polytask-deps
  SUITE_BUDGET=500         seconds for the whole suite; later stages are cut to fit it
  TEST_OMP_THREADS=2       OMP_NUM_THREADS/OPENBLAS_NUM_THREADS for ctest and sanitizer runs
                           (ctest -j16 with 16 OpenMP threads each would oversubscribe 16x);
                           0, or OMP_NUM_THREADS already set: left alone
  BENCH_MIN_TIME=0.05      --benchmark_min_time (seconds; plain number, GB 1.7 and 1.8+ take it)
  BENCH_FILTER=regex       --benchmark_filter;  BENCH_TIMEOUT=120 per binary (s)
  SANITIZER_TOOLS="memcheck racecheck"
  SANITIZER_TIMEOUT=120    per binary and tool (s);  SANITIZER_JOBS=4 binaries at once
  SANITIZER_GTEST_FILTER=  --gtest_filter for every sanitizer run; MEMCHECK_GTEST_FILTER and
                           RACECHECK_GTEST_FILTER override it per tool (e.g. '-*Large*')
  SANITIZER_ARGS="..."     extra compute-sanitizer arguments (e.g. --leak-check full)
  RATIO_PATTERN='vs_|ratio'  benchmark counters listed in the summary's ratio table (regex)
  POLYTASK_COMMIT, POLYTASK_DIRTY   commit id and dirty flag when the tree has no .git
                           (else a COMMIT file at the repository root, else "unknown")
  VERBOSE=1                echo every log to the console as well

The test processes run by compute-sanitizer see POLYTASK_UNDER_SANITIZER=<tool>, so a test may
shrink its sizes under it. Exit status: 0 when every stage that ran passed and found nothing.
EOF
}

# ---------------------------------------------------------------- worker: one sanitizer run
# Called as: gpu_suite.sh --sanitize-one TOOL BINARY LOGFILE (through xargs -P, see below).
# Writes LOGFILE and LOGFILE.rc ("<rc> <seconds>"); honours DEADLINE_EPOCH and SANITIZER_TIMEOUT.
if [ "${1:-}" = "--sanitize-one" ]; then
  tool=$2 bin=$3 log=$4
  now=$(date +%s)
  limit=$((DEADLINE_EPOCH - now))
  [ "$limit" -le "$SANITIZER_TIMEOUT" ] || limit=$SANITIZER_TIMEOUT
  if [ "$limit" -lt 10 ]; then
    echo "not run: out of time budget" >"$log"
    echo "budget 0" >"$log.rc"
    exit 0
  fi
  filter_var="${tool^^}_GTEST_FILTER"
  filter=${!filter_var:-${SANITIZER_GTEST_FILTER:-}}
  args=()
  [ -z "$filter" ] || args+=("--gtest_filter=$filter")
  set +e
  [ -z "${TEST_THREADS:-}" ] || export OMP_NUM_THREADS=$TEST_THREADS OPENBLAS_NUM_THREADS=$TEST_THREADS
  # shellcheck disable=SC2086
  POLYTASK_UNDER_SANITIZER=$tool timeout -k 10 "$limit" \
    "$COMPUTE_SANITIZER" --tool "$tool" --error-exitcode 86 ${SANITIZER_ARGS:-} \
    "$bin" "${args[@]}" >"$log" 2>&1
  rc=$?
  set -e
  echo "$rc $(($(date +%s) - now))" >"$log.rc"
  exit 0
fi

# ---------------------------------------------------------------- options
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --skip-tests) SKIP_TESTS=1 ;;
    --skip-bench) SKIP_BENCH=1 ;;
    --skip-sanitizer|--quick) SKIP_SANITIZER=1 ;;
    --fresh) FRESH=1 ;;
    --results-dir) RESULTS_DIR=$2; shift ;;
    --results-dir=*) RESULTS_DIR=${1#*=} ;;
    --build-dir) BUILD_DIR=$2; shift ;;
    --build-dir=*) BUILD_DIR=${1#*=} ;;
    *) echo "gpu_suite: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
ROOT=$(pwd)
NPROC=$(nproc 2>/dev/null || echo 4)
JOBS=${JOBS:-$NPROC}
CTEST_JOBS=${CTEST_JOBS:-$JOBS}
BUILD_DIR=${BUILD_DIR:-build-gpu-suite}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
CUDA_ARCHS=${CUDA_ARCHS:-90}
WERROR=${WERROR:-ON}
USE_DEPS=${USE_DEPS:-auto}
DEPS_DIR=${DEPS_DIR:-$ROOT/.deps}
DEPS_ROOT=${DEPS_ROOT:-/tmp/polytask-deps}
SUITE_BUDGET=${SUITE_BUDGET:-500}
TEST_OMP_THREADS=${TEST_OMP_THREADS:-2}
THREAD_ENV=()  # prefix for the test processes: many run at once, each with OpenMP threads
if [ -z "${OMP_NUM_THREADS:-}" ] && [ "$TEST_OMP_THREADS" != 0 ]; then
  THREAD_ENV=(env "OMP_NUM_THREADS=$TEST_OMP_THREADS" "OPENBLAS_NUM_THREADS=$TEST_OMP_THREADS")
fi
CTEST_TEST_TIMEOUT=${CTEST_TEST_TIMEOUT:-300}
BENCH_MIN_TIME=${BENCH_MIN_TIME:-0.05}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
SANITIZER_TOOLS=${SANITIZER_TOOLS:-memcheck racecheck}
SANITIZER_TIMEOUT=${SANITIZER_TIMEOUT:-120}
SANITIZER_JOBS=${SANITIZER_JOBS:-4}
VERBOSE=${VERBOSE:-0}
START_EPOCH=$(date +%s)
DEADLINE_EPOCH=$((START_EPOCH + SUITE_BUDGET))
RESERVE=20  # seconds kept for the summary and the copy to $OUT

PY=""
command -v python3 >/dev/null 2>&1 && PY=python3

# ---------------------------------------------------------------- identity of the run
DATE_UTC=$(date -u '+%Y-%m-%d %H:%M UTC')
DATE_TAG=$(date -u '+%Y%m%d-%H%M')
COMMIT=unknown
DIRTY=unknown
if [ -n "${POLYTASK_COMMIT:-}" ]; then
  COMMIT=$POLYTASK_COMMIT
  DIRTY=${POLYTASK_DIRTY:-unknown}
elif [ -e .git ] && command -v git >/dev/null 2>&1 && git rev-parse HEAD >/dev/null 2>&1; then
  COMMIT=$(git rev-parse HEAD)
  modified=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
  untracked=$(git status --porcelain --untracked-files=normal 2>/dev/null | grep -c '^??' || true)
  if [ "$modified" -eq 0 ] && [ "$untracked" -eq 0 ]; then DIRTY=clean
  else DIRTY="dirty ($modified modified tracked, $untracked untracked)"; fi
elif [ -f COMMIT ]; then
  COMMIT=$(head -n1 COMMIT | tr -d '[:space:]')
  DIRTY=${POLYTASK_DIRTY:-unknown (COMMIT file)}
fi
SHORT=${COMMIT:0:7}
[ "$COMMIT" != unknown ] || SHORT=unknown
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results/gpu-$DATE_TAG-$SHORT}
case $RESULTS_DIR in /*) ;; *) RESULTS_DIR=$ROOT/$RESULTS_DIR ;; esac
RES=$RESULTS_DIR
mkdir -p "$RES"

say() { echo "[gpu_suite $(date -u +%H:%M:%S)] $*"; }

# Device, toolchain.
GPU=0
GPU_NOTE=""
if ! command -v nvidia-smi >/dev/null 2>&1; then
  GPU_NOTE="no GPU: nvidia-smi missing"
elif ! gpu_line=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1) \
     || [ -z "$gpu_line" ]; then
  GPU_NOTE="no GPU: nvidia-smi failed: $(echo "$gpu_line" | head -n1)"
else
  GPU=1
  # "NVIDIA H100 80GB HBM3, 580.159.04, 81559 MiB" -> "NVIDIA H100 80GB HBM3 (driver 580.159.04, 81559 MiB)"
  GPU_NOTE=$(echo "$gpu_line" | head -n1 | awk -F', *' '{printf "%s (driver %s, %s)", $1, $2, $3}')
  GPU_COUNT=$(echo "$gpu_line" | wc -l)
  [ "$GPU_COUNT" -eq 1 ] || GPU_NOTE="$GPU_NOTE (and $((GPU_COUNT - 1)) more)"
fi
NVCC=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; } || true)
NVCC_VERSION=none
[ -z "$NVCC" ] || NVCC_VERSION=$("$NVCC" --version | grep -o 'release [0-9.]*, V[0-9.]*' | head -n1 || echo "?")
COMPUTE_SANITIZER=$(command -v compute-sanitizer ||
  { [ -x /usr/local/cuda/bin/compute-sanitizer ] && echo /usr/local/cuda/bin/compute-sanitizer; } ||
  { [ -n "$NVCC" ] && [ -x "$(dirname "$NVCC")/compute-sanitizer" ] && echo "$(dirname "$NVCC")/compute-sanitizer"; } ||
  true)
CMAKE_VERSION=$(cmake --version 2>/dev/null | head -n1 | awk '{print $3}')
CXX_VERSION=$(${CXX:-c++} --version 2>/dev/null | head -n1 || echo none)
{
  echo "date: $DATE_UTC"
  echo "commit: $COMMIT ($DIRTY)"
  echo "host: $(uname -srm), $NPROC cores"
  echo "gpu: $GPU_NOTE"
  echo "nvcc: $NVCC_VERSION ($NVCC)"
  echo "compute-sanitizer: ${COMPUTE_SANITIZER:-missing}"
  echo "cmake: $CMAKE_VERSION; c++: $CXX_VERSION; python3: ${PY:-missing}"
  [ "$GPU" -eq 0 ] || nvidia-smi 2>&1 || true
} >"$RES/environment.txt"
say "results in $RES"
say "gpu: $GPU_NOTE; nvcc: $NVCC_VERSION; commit $SHORT ($DIRTY)"

# ---------------------------------------------------------------- stage bookkeeping
STAGES=()               # in order
declare -A ST_STATUS=()    # ok | FAIL (...) | TIMEOUT | skipped: reason
declare -A ST_TIME=()
declare -A ST_NOTE=()
PROBLEMS=()             # one line each; any problem makes the exit status 1

remaining() { echo $((DEADLINE_EPOCH - RESERVE - $(date +%s))); }
# A `timeout` limit from what is left (at least 1 s: `timeout 0` would mean no limit at all).
limit() { local r; r=$(remaining); [ "$r" -ge 1 ] || r=1; echo "$r"; }

# run_logged LOG TIMEOUT CMD... : runs CMD with its output in LOG (and on the console when
# VERBOSE=1) under `timeout`; returns CMD's status (124 on timeout).
run_logged() {
  local log=$1 limit=$2
  shift 2
  local rc=0
  if [ "$VERBOSE" = 1 ]; then
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
  else
    timeout -k 10 "$limit" "$@" >"$log" 2>&1 || rc=$?
  fi
  return "$rc"
}

stage_begin() { STAGES+=("$1"); ST_T0=$(date +%s); say "stage $1 ..."; }
stage_end() {  # NAME STATUS [NOTE]
  ST_STATUS[$1]=$2
  ST_TIME[$1]=$(($(date +%s) - ST_T0))
  ST_NOTE[$1]=${3:-}
  say "stage $1: $2 (${ST_TIME[$1]} s)${3:+ — $3}"
}
stage_skip() {  # NAME REASON
  STAGES+=("$1")
  ST_STATUS[$1]="skipped: $2"
  ST_TIME[$1]=0
  ST_NOTE[$1]=""
  say "stage $1: skipped: $2"
}
show_tail() { echo "----- last $2 lines of $1"; tail -n "$2" "$1" || true; echo "-----"; }
status_of_rc() { case $1 in 0) echo ok ;; 124|137) echo TIMEOUT ;; *) echo "FAIL (exit $1)" ;; esac; }

# ---------------------------------------------------------------- stage: dependencies
# Which libraries the system lacks (headers are the test: the image has none of these packages).
missing_system_deps() {
  local miss=()
  local inc=(/usr/include /usr/local/include)
  have() { local f; for f in "${inc[@]}"; do [ -e "$f/$1" ] && return 0; done; return 1; }
  have gtest/gtest.h || miss+=(GoogleTest)
  have benchmark/benchmark.h || miss+=("Google Benchmark")
  have toml++/toml.h || have toml++/toml.hpp || miss+=(toml++)
  have zlib.h || miss+=(zlib)
  [ -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so ] || have cblas.h ||
    have x86_64-linux-gnu/openblas-pthread/cblas.h || miss+=(OpenBLAS)
  echo "${miss[*]:-}"
}

# unpack_deps: .deps/*.deb -> $DEPS_ROOT (dpkg -x, or ar + tar without dpkg), absolute symlinks
# retargeted into the root, and $DEPS_ROOT/runtime holding links to the shared libraries the
# system's loader does not know (LD_LIBRARY_PATH: needed for transitive ones such as
# libgfortran.so.5 behind libopenblas.so.0; direct ones are found through the RUNPATH anyway).
unpack_deps() {
  rm -rf "$DEPS_ROOT"
  mkdir -p "$DEPS_ROOT"
  local deb tmp member
  for deb in "$DEPS_DIR"/*.deb; do
    echo "unpacking $deb"
    if command -v dpkg >/dev/null 2>&1; then
      dpkg -x "$deb" "$DEPS_ROOT" || return 1
    else
      tmp=$(mktemp -d)
      (cd "$tmp" && ar x "$deb") || return 1
      member=$(ls "$tmp"/data.tar.* | head -n1)
      case $member in
        *.zst) zstd -dc "$member" | tar -x -C "$DEPS_ROOT" || return 1 ;;
        *) tar -xf "$member" -C "$DEPS_ROOT" || return 1 ;;
      esac
      rm -rf "$tmp"
    fi
  done
  local link target
  while IFS= read -r link; do
    target=$(readlink "$link")
    if [ -e "$DEPS_ROOT$target" ]; then
      ln -sfn "$DEPS_ROOT$target" "$link" && echo "retargeted $link -> $DEPS_ROOT$target" || return 1
    fi
  done < <(find "$DEPS_ROOT" -type l -lname '/*')
  mkdir -p "$DEPS_ROOT/runtime"
  local known="" so name
  local ldconfig_bin
  ldconfig_bin=$(command -v ldconfig || echo /sbin/ldconfig)
  known=$("$ldconfig_bin" -p 2>/dev/null | awk '{print $1}' || true)
  while IFS= read -r so; do
    name=$(basename "$so")
    if ! grep -qxF "$name" <<<"$known"; then
      ln -sfn "$so" "$DEPS_ROOT/runtime/$name" && echo "runtime: $name (the system has none)"
    fi
  done < <(find "$DEPS_ROOT/usr/lib" "$DEPS_ROOT/lib" -maxdepth 2 -name 'lib*.so.*' -type l \
             2>/dev/null | grep -v '/openblas-' || true)
  # Symlinks only: Debian ships each library's SONAME (libz.so.1) as a link to the real file
  # (libz.so.1.2.13), and the SONAME is what the loader and `ldconfig -p` go by. Not the
  # openblas-* folders: their libblas.so.3/liblapack.so.3 would shadow the system's.
}

DEPS_NOTE="system"
DEPS_ROOT_ARG=""  # empty: the system's libraries (the cache variable is reset, not kept)
missing=$(missing_system_deps)
[ -z "$missing" ] || DEPS_NOTE="system (lacks: $missing)"
use=0
case $USE_DEPS in
  1|on|ON|yes) use=1 ;;
  0|off|OFF|no) use=0 ;;
  *) [ -z "$missing" ] || use=1 ;;
esac
if [ "$use" = 1 ]; then
  stage_begin deps
  if ! ls "$DEPS_DIR"/*.deb >/dev/null 2>&1; then
    stage_end deps "FAIL (no $DEPS_DIR/*.deb)" "missing: ${missing:-none}; run bench/fetch_gpu_deps.sh on Debian 12 and carry .deps"
    PROBLEMS+=("dependencies: the system lacks ${missing:-?} and $DEPS_DIR has no .deb files")
  elif unpack_deps >"$RES/deps.log" 2>&1; then
    DEPS_ROOT_ARG=$DEPS_ROOT
    export LD_LIBRARY_PATH="$DEPS_ROOT/runtime${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    n_debs=$(ls "$DEPS_DIR"/*.deb | wc -l)
    rt=$(find "$DEPS_ROOT/runtime" -mindepth 1 -printf '%f ' | sed 's/ $//')
    DEPS_NOTE="$n_debs .debs unpacked to $DEPS_ROOT; on LD_LIBRARY_PATH (the system lacks them): ${rt:-none}"
    stage_end deps ok "${missing:+system lacks: $missing; }$DEPS_NOTE"
  else
    stage_end deps "FAIL (unpack)" "see deps.log"
    PROBLEMS+=("dependencies: unpacking $DEPS_DIR failed (deps.log)")
    show_tail "$RES/deps.log" 20
  fi
fi

# ---------------------------------------------------------------- stage: configure + build
CONFIGURED=0 BUILT=0 CUDA_NOTE="?"
[ "${FRESH:-0}" != 1 ] || rm -rf "$BUILD_DIR"
stage_begin configure
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
[ ! -f "$BUILD_DIR/CMakeCache.txt" ] || gen=()  # keep the existing build's generator
# shellcheck disable=SC2086
if run_logged "$RES/configure.log" "$(limit)" cmake -S "$ROOT" -B "$BUILD_DIR" "${gen[@]}" \
     -DCMAKE_BUILD_TYPE=Release -DPOLYTASK_WARNINGS_AS_ERRORS="$WERROR" \
     -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" -DPOLYTASK_DEPS_ROOT="$DEPS_ROOT_ARG" \
     ${CMAKE_ARGS:-}; then
  CONFIGURED=1
  CUDA_NOTE=$(grep -o 'polytask: CUDA [^ ]*, architectures .*' "$RES/configure.log" | head -n1 |
              sed 's/polytask: //' || true)
  [ -n "$CUDA_NOTE" ] || CUDA_NOTE="CUDA backend OFF (no toolkit found)"
  stage_end configure ok "$CUDA_NOTE"
  if [ "$GPU" = 1 ] && ! grep -q 'polytask: CUDA ' "$RES/configure.log"; then
    PROBLEMS+=("a GPU is present but the CUDA backend was not configured (configure.log)")
  fi
else
  rc=$?
  stage_end configure "$(status_of_rc $rc)" "see configure.log"
  PROBLEMS+=("configure failed (configure.log)")
  show_tail "$RES/configure.log" 40
fi

if [ "$CONFIGURED" = 1 ]; then
  stage_begin build
  targets=()
  for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
  # Ninja: keep going past a failed target, so the tests, benchmarks and sanitizer runs that
  # did build still run (the failure is reported all the same).
  keep_going=()
  grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$BUILD_DIR/CMakeCache.txt" && keep_going=(-- -k 0)
  if run_logged "$RES/build.log" "$(limit)" cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}" "${keep_going[@]}"; then
    BUILT=1
    warnings=$(grep -c 'warning:' "$RES/build.log" || true)
    stage_end build ok "$warnings warning lines"
  else
    rc=$?
    errors=$(grep -cE '(^|[^a-z_])error:' "$RES/build.log" || true)
    failed=$(grep -c '^FAILED: ' "$RES/build.log" || true)
    stage_end build "$(status_of_rc $rc)" "$failed failed build steps, $errors 'error:' lines (build.log)"
    first=$(grep -m1 -E '(^|[^a-z_])error:|^CMake Error' "$RES/build.log" ||
            grep -m1 -E '^FAILED: |^ninja: ' "$RES/build.log" || true)
    PROBLEMS+=("build failed (build.log): $(echo "$first" | cut -c1-240)")
    show_tail "$RES/build.log" 40
  fi
else
  stage_skip build "configure failed"
fi

# The real GPU test binaries and the GPU benchmarks, found by name in the build tree.
find_built() {  # PATTERN...
  [ -d "$BUILD_DIR" ] || return 0
  find "$BUILD_DIR" -path '*/CMakeFiles' -prune -o -type f -perm -u+x \( "$@" \) -print 2>/dev/null | sort
}
mapfile -t GPU_TESTS < <(find_built -name 'test_cuda_*' -o -name 'test_engine_cuda_*' | grep -v '_emulated$' || true)
mapfile -t GPU_BENCHES < <(find_built -name 'bench_gpu_*' || true)
INCOMPLETE=""  # the later stages run whatever was built, saying so when the build failed
[ "$BUILT" = 1 ] || INCOMPLETE="the build failed: only what was built ran"

# ---------------------------------------------------------------- stage: tests (ctest)
TESTS_NOTE=""
if [ "${SKIP_TESTS:-0}" = 1 ]; then
  stage_skip tests "SKIP_TESTS=1"
elif [ "$CONFIGURED" = 0 ]; then
  stage_skip tests "configure failed"
elif [ "$(remaining)" -lt 30 ]; then
  stage_skip tests "out of time budget"
  PROBLEMS+=("tests not run: out of time budget")
else
  stage_begin tests
  ctest_major_minor=$(ctest --version | head -n1 | grep -o '[0-9]*\.[0-9]*' | head -n1)
  junit=()
  if [ "$(printf '%s\n3.21\n' "$ctest_major_minor" | sort -V | head -n1)" = 3.21 ]; then
    junit=(--output-junit "$RES/ctest-junit.xml")
  fi
  rc=0
  # shellcheck disable=SC2086
  (cd "$BUILD_DIR" && run_logged "$RES/ctest.log" "$(limit)" "${THREAD_ENV[@]}" ctest --output-on-failure \
     -j "$CTEST_JOBS" --timeout "$CTEST_TEST_TIMEOUT" "${junit[@]}" ${CTEST_ARGS:-}) || rc=$?
  # Which binary each test runs (for the GPU-test counts).
  # shellcheck disable=SC2086
  (cd "$BUILD_DIR" && ctest --show-only=json-v1 ${CTEST_ARGS:-} >"$RES/ctest-tests.json" 2>/dev/null) || true
  # Counts: from the JUnit file and the test list when python3 is there, else from ctest's text.
  T_TOTAL="?" T_PASSED="?" T_FAILED="?" T_SKIPPED="?" GPU_TOTAL="?" GPU_SKIPPED="?" GPU_FAILED="?"
  GPU_BINS="?" FAILED_NAMES="" GPU_SKIPPED_NAMES=""
  if [ -n "$PY" ] && [ -s "$RES/ctest-junit.xml" ]; then
    "$PY" - "$RES/ctest-junit.xml" "$RES/ctest-tests.json" >"$RES/tests.env" <<'PY' || true
import json, os, re, shlex, sys
import xml.etree.ElementTree as ET
junit, listing = sys.argv[1], sys.argv[2]
# The binary behind each test. Test names are not unique (a tests/cuda file registers the same
# gtest names in its real and its _emulated binary), so match by position: CTest writes the
# JUnit cases in test-index order, the order of --show-only=json-v1. Only if the two lists
# disagree, fall back to names, and count a name as GPU only when every binary with it is one.
listed = []
try:
    for t in json.load(open(listing)).get("tests", []):
        cmd = t.get("command") or [""]
        listed.append((t.get("name"), os.path.basename(cmd[0])))
except Exception:
    pass
cases = list(ET.parse(junit).getroot().iter("testcase"))
gpu_re = re.compile(r"^test_(engine_)?cuda_.*(?<!_emulated)$")
if [n for n, _ in listed] == [c.get("name") for c in cases]:
    binaries = [b for _, b in listed]
else:
    by_name = {}
    for n, b in listed:
        by_name.setdefault(n, set()).add(b)
    binaries = []
    for c in cases:
        bins = by_name.get(c.get("name"), set())
        binaries.append(next(iter(bins)) if len(bins) == 1 or (bins and all(gpu_re.match(b) for b in bins)) else "")
counts = dict(total=0, passed=0, failed=0, skipped=0)
gpu = dict(total=0, failed=0, skipped=0)
failed, gpu_skipped, gpu_bins = [], [], set()
for case, binary in zip(cases, binaries):
    name = case.get("name", "?")
    status = case.get("status", "")
    if case.find("failure") is not None or case.find("error") is not None or status == "fail":
        kind = "failed"
    elif case.find("skipped") is not None or status in ("notrun", "disabled"):
        kind = "skipped"
    else:
        kind = "passed"
    counts["total"] += 1
    counts[kind] += 1
    if kind == "failed":
        failed.append(name)
    if gpu_re.match(binary):
        gpu_bins.add(binary)
        gpu["total"] += 1
        if kind != "passed":
            gpu[kind] += 1
        if kind == "skipped":
            gpu_skipped.append(name)
if not listed:  # no test list: the GPU tests cannot be told apart
    gpu = dict(total="?", failed="?", skipped="?")
    gpu_bins = "?"
out = {
    "T_TOTAL": counts["total"], "T_PASSED": counts["passed"], "T_FAILED": counts["failed"],
    "T_SKIPPED": counts["skipped"], "GPU_TOTAL": gpu["total"], "GPU_FAILED": gpu["failed"],
    "GPU_SKIPPED": gpu["skipped"], "GPU_BINS": len(gpu_bins) if listed else "?",
    "FAILED_NAMES": " ".join(failed[:5]) + (" ..." if len(failed) > 5 else ""),
    "GPU_SKIPPED_NAMES": " ".join(gpu_skipped[:5]) + (" ..." if len(gpu_skipped) > 5 else ""),
}
for k, v in out.items():
    print(f"{k}={shlex.quote(str(v))}")
PY
    # shellcheck disable=SC1091
    [ ! -s "$RES/tests.env" ] || . "$RES/tests.env"
  fi
  if [ "$T_TOTAL" = "?" ]; then  # no python3 or no JUnit: ctest's own lines
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$RES/ctest.log" | tail -n1 || true)
    if [ -n "$line" ]; then
      T_FAILED=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed.*/\1/')
      T_TOTAL=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
      T_SKIPPED=$(grep -cE 'Test +#[0-9]+: .*\*\*\*(Skipped|Not Run)' "$RES/ctest.log" || true)
      T_PASSED=$((T_TOTAL - T_FAILED - T_SKIPPED))
      FAILED_NAMES=$(sed -n '/The following tests FAILED:/,$p' "$RES/ctest.log" |
                     grep -oE '^[[:space:]]*[0-9]+ - [^ ]+' | awk '{print $3}' | head -n 5 | tr '\n' ' ' || true)
    fi
    GPU_NOTE_TESTS="(GPU tests not told apart: needs python3 and CTest >= 3.21)"
  fi
  TESTS_NOTE="$T_TOTAL tests: $T_PASSED passed, $T_FAILED failed, $T_SKIPPED skipped"
  if [ "$GPU_TOTAL" != "?" ]; then
    TESTS_NOTE="$TESTS_NOTE; GPU: $GPU_TOTAL in $GPU_BINS binaries, $GPU_FAILED failed, $GPU_SKIPPED skipped"
  else
    TESTS_NOTE="$TESTS_NOTE ${GPU_NOTE_TESTS:-}"
  fi
  if [ "$rc" -eq 0 ]; then st=ok; else st=$(status_of_rc "$rc"); fi
  if [ "$rc" -ne 0 ]; then
    PROBLEMS+=("ctest: $st${FAILED_NAMES:+; failed: $FAILED_NAMES}")
    show_tail "$RES/ctest.log" 40
  fi
  if [ "$GPU" = 1 ]; then
    if [ "$GPU_SKIPPED" != "?" ] && [ "$GPU_SKIPPED" -gt 0 ]; then
      st="FAIL (GPU tests skipped)"
      PROBLEMS+=("$GPU_SKIPPED GPU tests SKIPPED on a GPU machine: $GPU_SKIPPED_NAMES")
    fi
    if [ "$GPU_TOTAL" = 0 ] && [ "$BUILT" = 1 ]; then
      PROBLEMS+=("a GPU is present but ctest ran no GPU test (test_cuda_* / test_engine_cuda_*)")
    fi
  fi
  stage_end tests "$st" "$TESTS_NOTE"
fi

# ---------------------------------------------------------------- stage: benchmarks
BENCH_ROWS=0
if [ "${SKIP_BENCH:-0}" = 1 ]; then
  stage_skip bench "SKIP_BENCH=1"
elif [ "$GPU" = 0 ]; then
  stage_skip bench "$GPU_NOTE"
elif [ "${#GPU_BENCHES[@]}" -eq 0 ]; then
  stage_skip bench "no bench_gpu_* binary in the build"
else
  stage_begin bench
  mkdir -p "$RES/bench"
  bad=0 errors=0 ran=0
  for b in "${GPU_BENCHES[@]}"; do
    name=$(basename "$b")
    left=$(remaining)
    if [ "$left" -lt 15 ]; then
      echo "$name: not run (out of time budget)" >>"$RES/bench/notes.txt"
      PROBLEMS+=("benchmark $name not run: out of time budget")
      bad=$((bad + 1))
      continue
    fi
    [ "$left" -le "$BENCH_TIMEOUT" ] || left=$BENCH_TIMEOUT
    args=(--benchmark_min_time="$BENCH_MIN_TIME" --benchmark_out="$RES/bench/$name.json"
          --benchmark_out_format=json)
    [ -z "${BENCH_FILTER:-}" ] || args+=(--benchmark_filter="$BENCH_FILTER")
    say "  $name"
    rc=0
    run_logged "$RES/bench/$name.log" "$left" "$b" "${args[@]}" || rc=$?
    ran=$((ran + 1))
    if [ "$rc" -ne 0 ]; then
      bad=$((bad + 1))
      PROBLEMS+=("benchmark $name: $(status_of_rc "$rc") (bench/$name.log)")
      show_tail "$RES/bench/$name.log" 15
    fi
    if [ -s "$RES/bench/$name.json" ]; then
      n_err=$(grep -c '"error_occurred": true' "$RES/bench/$name.json" || true)
      if [ "$n_err" -gt 0 ]; then
        errors=$((errors + n_err))
        msg=$(grep -m1 -o '"error_message": *"[^"]*"' "$RES/bench/$name.json" | sed 's/^[^:]*: *"//; s/"$//' | cut -c1-150)
        PROBLEMS+=("benchmark $name: $n_err benchmarks reported an error, e.g. \"$msg\"")
      fi
      BENCH_ROWS=$((BENCH_ROWS + $(grep -c '"run_name"' "$RES/bench/$name.json" || true)))
    fi
  done
  if [ "$bad" -eq 0 ] && [ "$errors" -eq 0 ]; then st=ok
  elif [ "$bad" -eq 0 ]; then st="FAIL ($errors benchmarks with errors)"
  else st="FAIL ($bad binaries failed, $errors benchmarks with errors)"; fi
  stage_end bench "$st" "$ran of ${#GPU_BENCHES[@]} binaries ran, $BENCH_ROWS benchmarks, min_time $BENCH_MIN_TIME s${INCOMPLETE:+; $INCOMPLETE}"
fi

# ---------------------------------------------------------------- stage: sanitizer
declare -A SAN=()   # "<tool>|<binary>" -> cell text
if [ "${SKIP_SANITIZER:-0}" = 1 ]; then
  stage_skip sanitizer "SKIP_SANITIZER=1"
elif [ "$GPU" = 0 ]; then
  stage_skip sanitizer "$GPU_NOTE"
elif [ -z "$COMPUTE_SANITIZER" ]; then
  stage_skip sanitizer "compute-sanitizer not found"
  PROBLEMS+=("compute-sanitizer not found on a GPU machine")
elif [ "${#GPU_TESTS[@]}" -eq 0 ]; then
  stage_skip sanitizer "no test_cuda_* / test_engine_cuda_* binary in the build"
  PROBLEMS+=("a GPU is present but no GPU test binary was built")
else
  stage_begin sanitizer
  mkdir -p "$RES/sanitizer"
  TEST_THREADS=""
  [ "${#THREAD_ENV[@]}" -eq 0 ] || TEST_THREADS=$TEST_OMP_THREADS
  export DEADLINE_EPOCH=$((DEADLINE_EPOCH - RESERVE)) SANITIZER_TIMEOUT SANITIZER_ARGS TEST_THREADS \
         SANITIZER_GTEST_FILTER MEMCHECK_GTEST_FILTER RACECHECK_GTEST_FILTER COMPUTE_SANITIZER
  # memcheck over every binary first, then racecheck: a cut-short run loses the slower tool.
  jobs_file="$RES/sanitizer/jobs.txt"
  : >"$jobs_file"
  for tool in $SANITIZER_TOOLS; do
    for b in "${GPU_TESTS[@]}"; do
      printf '%s\n%s\n%s\n' "$tool" "$b" "$RES/sanitizer/$tool-$(basename "$b").log" >>"$jobs_file"
    done
  done
  xargs -d '\n' -n 3 -P "$SANITIZER_JOBS" bash "$ROOT/bench/gpu_suite.sh" --sanitize-one <"$jobs_file" || true
  DEADLINE_EPOCH=$((DEADLINE_EPOCH + RESERVE))
  clean=0 dirty=0
  for tool in $SANITIZER_TOOLS; do
    not_clean=()
    for b in "${GPU_TESTS[@]}"; do
      name=$(basename "$b")
      log="$RES/sanitizer/$tool-$name.log"
      read -r rc secs 2>/dev/null <"$log.rc" || { rc=missing; secs=0; }
      # compute-sanitizer: "ERROR SUMMARY: N errors"; racecheck also "RACECHECK SUMMARY: N hazards
      # displayed (E errors, W warnings)".
      nerr=$(grep -oE 'ERROR SUMMARY: [0-9]+' "$log" 2>/dev/null | tail -n1 | grep -oE '[0-9]+$' || true)
      hazards=$(grep -oE 'RACECHECK SUMMARY: [0-9]+ hazard' "$log" 2>/dev/null | tail -n1 | grep -oE '[0-9]+' || true)
      gfail=$(grep -cE '^\[  FAILED  \] [A-Za-z_]' "$log" 2>/dev/null || true)
      [ "${gfail:-0}" != 0 ] || gfail=""
      gskip=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$log" 2>/dev/null | grep -oE '[0-9]+' | tail -n1 || true)
      case $rc in
        0) cell="ok (${nerr:-0} errors${hazards:+, $hazards hazards}, ${secs} s)" ;;
        86) cell="**${nerr:-?} ERRORS**${hazards:+ ($hazards hazards)} (${secs} s)" ;;
        124|137) cell="**TIMEOUT** after ${secs} s${nerr:+ ($nerr errors so far)}" ;;
        budget) cell="**not run** (time budget)" ;;
        missing) cell="**no result**" ;;
        *) cell="**exit $rc**${nerr:+ ($nerr errors)}${gfail:+, $gfail tests failed} (${secs} s)" ;;
      esac
      [ -z "$gskip" ] || cell="$cell, **$gskip skipped**"
      SAN["$tool|$name"]=$cell
      if [ "$rc" = 0 ] && [ -z "$gskip" ]; then
        clean=$((clean + 1))
      else
        dirty=$((dirty + 1))
        not_clean+=("$name")
      fi
    done
    # One line per tool; the table below the problems has each run's details.
    [ "${#not_clean[@]}" -eq 0 ] ||
      PROBLEMS+=("$tool: ${#not_clean[@]} of ${#GPU_TESTS[@]} binaries not clean (errors, timeouts or skipped tests; see the table and sanitizer/$tool-*.log): ${not_clean[*]}")
  done
  if [ "$dirty" -eq 0 ]; then st=ok; else st="FAIL ($dirty of $((clean + dirty)) runs)"; fi
  stage_end sanitizer "$st" "$clean of $((clean + dirty)) runs clean (${SANITIZER_TOOLS// /, } over ${#GPU_TESTS[@]} binaries)${INCOMPLETE:+; $INCOMPLETE}"
fi

# ---------------------------------------------------------------- summary
# Vendor ratios: benchmark counters whose name contains "vs_" or "ratio".
ratio_table() {
  local files=("$RES"/bench/*.json)
  [ -e "${files[0]}" ] || { echo "(no benchmark JSON)"; return; }
  if [ -z "$PY" ]; then
    echo "(python3 missing: no table; see bench/*.json)"
    return
  fi
  RATIO_PATTERN=${RATIO_PATTERN:-vs_|ratio} "$PY" - "${files[@]}" <<'PY' || echo "(could not parse the benchmark JSON)"
import json, os, re, sys
pattern = re.compile(os.environ["RATIO_PATTERN"])
rows, errs = [], []
for path in sys.argv[1:]:
    binary = os.path.basename(path)[:-5]
    try:
        data = json.load(open(path))
    except Exception as e:
        errs.append(f"{binary}: unreadable JSON ({e.__class__.__name__})")
        continue
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            errs.append(f"{b.get('name')}: {b.get('error_message', 'error')}")
            continue
        for key, value in b.items():
            if pattern.search(key) and isinstance(value, (int, float)):
                t = b.get("real_time")
                unit = b.get("time_unit", "")
                time = f"{t:.4g} {unit}" if isinstance(t, (int, float)) else "?"
                rows.append((b.get("name", "?"), time, key, f"{value:.3g}"))
if rows:
    print("| benchmark | time | counter | value |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
else:
    print(f"(no counter matching '{pattern.pattern}' in the benchmark JSON)")
# Errors, grouped by message (without a GPU every benchmark says the same).
by_msg = {}
for e in errs:
    name, _, msg = e.partition(": ")
    by_msg.setdefault(msg, []).append(name)
for msg, names in by_msg.items():
    more = f" and {len(names) - 2} more" if len(names) > 2 else ""
    print(f"- error in {len(names)} benchmarks ({', '.join(names[:2])}{more}): {msg}")
PY
}

FAILED_STAGES=0
for s in "${STAGES[@]}"; do
  case ${ST_STATUS[$s]} in ok|skipped:*) ;; *) FAILED_STAGES=$((FAILED_STAGES + 1)) ;; esac
done
if [ "$FAILED_STAGES" -eq 0 ] && [ "${#PROBLEMS[@]}" -eq 0 ]; then VERDICT=PASS; else VERDICT=FAIL; fi
[ "$GPU" = 1 ] || VERDICT="$VERDICT (no GPU: GPU tests skipped, no sanitizer, no benchmarks)"

{
  echo "# GPU suite: $VERDICT"
  echo
  echo "- date: $DATE_UTC; total $(($(date +%s) - START_EPOCH)) s (budget $SUITE_BUDGET s)"
  echo "- device: $GPU_NOTE"
  echo "- nvcc: $NVCC_VERSION; cmake $CMAKE_VERSION; $NPROC cores"
  echo "- commit: $COMMIT, $DIRTY"
  echo "- build: Release, CUDA_ARCHS=$CUDA_ARCHS, WERROR=$WERROR, $CUDA_NOTE; deps: $DEPS_NOTE"
  echo
  echo "| stage | status | time | note |"
  echo "|---|---|---|---|"
  for s in "${STAGES[@]}"; do
    echo "| $s | ${ST_STATUS[$s]} | ${ST_TIME[$s]} s | ${ST_NOTE[$s]} |"
  done
  echo
  if [ "${#PROBLEMS[@]}" -gt 0 ]; then
    echo "## Problems"
    for p in "${PROBLEMS[@]}"; do echo "- $p"; done
    echo
  fi
  if [ "${#SAN[@]}" -gt 0 ]; then
    echo "## compute-sanitizer"
    header="| binary |" sep="|---|"
    for tool in $SANITIZER_TOOLS; do header="$header $tool |"; sep="$sep---|"; done
    echo "$header"
    echo "$sep"
    for b in "${GPU_TESTS[@]}"; do
      name=$(basename "$b")
      row="| $name |"
      for tool in $SANITIZER_TOOLS; do row="$row ${SAN[$tool|$name]:-} |"; done
      echo "$row"
    done
    echo
  fi
  if [ -d "$RES/bench" ]; then
    echo "## Vendor ratios (benchmark counters matching '${RATIO_PATTERN:-vs_|ratio}')"
    ratio_table
    echo
  fi
  echo "Logs: $RES (configure.log, build.log, ctest.log, ctest-junit.xml, bench/, sanitizer/)"
} >"$RES/summary.md"

# Copy to $OUT (the device tool brings back at most 8 files): summary, all logs as one archive,
# and the benchmark JSON merged into one file.
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$RES/summary.md" "$OUT/summary.md"
  archive="$OUT/gpu-suite-logs.tar.gz"
  tar -czf "$archive" -C "$(dirname "$RES")" "$(basename "$RES")" 2>/dev/null || true
  if [ "$(stat -c %s "$archive" 2>/dev/null || echo 0)" -gt $((15 * 1024 * 1024)) ]; then
    # Too big to come back (16 MiB a file): keep the last MiB of each log.
    tmp=$(mktemp -d)
    cp -r "$RES" "$tmp/"
    find "$tmp" -type f -size +1M -exec sh -c 'tail -c 1M "$1" >"$1.t" && mv "$1.t" "$1"' _ {} \;
    tar -czf "$archive" -C "$tmp" "$(basename "$RES")"
    rm -rf "$tmp"
  fi
  if [ -n "$PY" ] && ls "$RES"/bench/*.json >/dev/null 2>&1; then
    "$PY" - "$RES"/bench/*.json >"$OUT/benchmarks.json" <<'PY' || rm -f "$OUT/benchmarks.json"
import json, os, sys
merged = {}
for p in sys.argv[1:]:
    try:
        merged[os.path.basename(p)[:-5]] = json.load(open(p))
    except Exception as e:
        merged[os.path.basename(p)[:-5]] = {"error": str(e)}
json.dump(merged, sys.stdout, indent=1)
PY
  fi
fi

echo
cat "$RES/summary.md"
[[ $VERDICT == PASS* ]]
