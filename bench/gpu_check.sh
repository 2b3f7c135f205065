#!/usr/bin/env bash
# bench/gpu_check.sh — runs ON THE GPU MACHINE, in the repository root, with the folder that
# bench/gpu_prepare.sh filled here carried (.gpu-window): one command that turns a GPU window
# into complete evidence in at most 8 minutes, building nothing. Five parts, in this order,
# each under a hard time budget (`timeout`), each writing its results as soon as it has them,
# so a run cut short still returns what it got:
#   1. device, driver, clocks, commit                       -> environment.txt
#   2. every real-GPU test, one process per test, timed out -> tests.tsv
#   3. compute-sanitizer: memcheck over the kernel tests (POLYTASK_TEST_SMALL=1), racecheck
#      and synccheck over a few small-shape tests          -> sanitizer.txt
#   4. mnist-digit-parity on Fashion-MNIST, 2 epochs at FP32/TF32/BF16 with and without CUDA
#      graphs, the PyTorch peer (eager, graphs), ratios, every balancer's cost, and one rank of
#      data-parallel training through NCCL against the plain run -> train.tsv
#   5. our GEMM and conv kernels against cuBLAS/cuDNN at the workload shapes -> bench.json
# plus summary.md (one section per part, appended as it finishes) and logs.tar.gz (every log,
# refreshed after each part): 7 files, under $OUT when set (the device tool brings back 8 at
# most), else bench/results/gpu-window-<UTC date>-<short commit>/.
# Without a GPU (a rehearsal here) every GPU step reports "skipped: no device" and the rest
# really runs: the programs start from the folder, the tests skip saying why, the benchmark
# filters are listed. See bench/README.md, "The GPU window".
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash bench/gpu_check.sh [--window DIR] [--results DIR]

Runs the GPU check from the folder bench/gpu_prepare.sh made (default .gpu-window) and writes
summary.md, environment.txt, tests.tsv, sanitizer.txt, train.tsv, bench.json and logs.tar.gz
into $OUT (when set) or --results DIR (default bench/results/gpu-window-<date>-<commit>).
Exit status 0 when nothing that ran failed (a rehearsal without a GPU included), else 1.

Time budgets in seconds (environment): CHECK_BUDGET 470 in all; BUDGET_TESTS 110,
BUDGET_SANITIZER 120, BUDGET_TRAIN 150, BUDGET_BENCH 60 per part (a part also stops at the
overall deadline); TEST_TIMEOUT 60 per test; SANITIZER_TIMEOUT 100 per sanitizer run.
Other settings: TEST_JOBS 8 and SANITIZER_JOBS 8 processes at once; TEST_OMP_THREADS 2;
RACECHECK_BINARIES (default: gemm conv2d tensor_cores pool2d batchnorm reduce loss kernel
tests); SANITIZER_GTEST_FILTER ['-*AgreesWith*:*BitIdentical*:*Repeat*'];
TRAIN_EPOCHS 2; TRAIN_BATCH 128; BENCH_MIN_TIME 0.02; TORCH_PY [python3].
EOF
}

# ---------------------------------------------------------------- one test / one sanitizer run
# Workers called through xargs -P (below): bash gpu_check.sh --run-test BIN TEST, and
# bash gpu_check.sh --sanitize TOOL BIN. Each stops itself at PART_DEADLINE.
worker_limit() {  # seconds this worker may run: min(cap, what is left of the part)
  local left=$((PART_DEADLINE - $(date +%s)))
  [ "$left" -le "$1" ] || left=$1
  echo "$left"
}
if [ "${1:-}" = "--run-test" ]; then
  bin=$2 test=$3
  log="$LOGS/tests/$(basename "$bin").${test//\//_}.log"
  limit=$(worker_limit "$TEST_TIMEOUT")
  if [ "$limit" -lt 3 ]; then
    printf '%s\t%s\tnot-run\t0\tpart time budget spent\n' "$(basename "$bin")" "$test" >>"$TESTS_TSV"
    exit 0
  fi
  t0=$(date +%s%N)
  rc=0
  env LD_LIBRARY_PATH="$RUNLIB" timeout -k 5 "$limit" "$bin" --gtest_filter="$test" >"$log" 2>&1 || rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  reason=""
  if [ "$rc" = 0 ] && grep -q '^\[  SKIPPED \]' "$log"; then
    status=skipped
    reason=$(grep -A1 -m1 ': Skipped$' "$log" | tail -n1)
  elif [ "$rc" = 0 ]; then
    status=passed
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    status=timeout reason="killed after ${limit} s"
  else
    status=failed
    reason=$(grep -m1 -A1 -E 'Failure$|^unknown file|terminate|what\(\)' "$log" | tr '\n' ' ' || true)
    [ -n "$reason" ] || reason="exit $rc: $(tail -n1 "$log")"
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$(basename "$bin")" "$test" "$status" "$secs" \
    "$(echo "$reason" | tr '\t' ' ' | cut -c1-300)" >>"$TESTS_TSV"
  exit 0
fi
if [ "${1:-}" = "--sanitize" ]; then
  tool=$2 bin=$3
  log="$LOGS/sanitizer/$tool-$(basename "$bin").log"
  limit=$(worker_limit "$SANITIZER_TIMEOUT")
  if [ "$limit" -lt 5 ]; then
    echo "not run: part time budget spent" >"$log"
    echo "budget 0" >"$log.rc"
    exit 0
  fi
  t0=$(date +%s)
  rc=0
  env LD_LIBRARY_PATH="$RUNLIB" POLYTASK_TEST_SMALL=1 timeout -k 5 "$limit" \
    compute-sanitizer --tool "$tool" --error-exitcode 86 "$bin" \
    --gtest_filter="$SANITIZER_GTEST_FILTER" >"$log" 2>&1 || rc=$?
  echo "$rc $(($(date +%s) - t0))" >"$log.rc"
  exit 0
fi

# ---------------------------------------------------------------- settings
WINDOW=${WINDOW_DIR:-}
RESULTS=""
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --window) WINDOW=${2:?--window needs a folder}; shift ;;
    --results) RESULTS=${2:?--results needs a folder}; shift ;;
    *) echo "gpu_check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/gpu_window_lib.sh
. bench/gpu_window_lib.sh
WINDOW=$(readlink -f "${WINDOW:-$WINDOW_DIR_DEFAULT}")
if [ ! -f "$WINDOW/$WINDOW_ARCHIVE" ] || [ ! -f "$WINDOW/BUILD.txt" ]; then
  echo "gpu_check: $WINDOW is not a prepared window (no $WINDOW_ARCHIVE or BUILD.txt): run bash bench/gpu_prepare.sh here and carry the folder" >&2
  exit 1
fi

START=$(date +%s)
CHECK_BUDGET=${CHECK_BUDGET:-470}
DEADLINE=$((START + CHECK_BUDGET))
RESERVE=15  # for the last summary lines and the archive
BUDGET_TESTS=${BUDGET_TESTS:-110}
BUDGET_SANITIZER=${BUDGET_SANITIZER:-120}
BUDGET_TRAIN=${BUDGET_TRAIN:-150}
BUDGET_BENCH=${BUDGET_BENCH:-60}
export TEST_TIMEOUT=${TEST_TIMEOUT:-60}
export SANITIZER_TIMEOUT=${SANITIZER_TIMEOUT:-100}
TEST_JOBS=${TEST_JOBS:-8}
SANITIZER_JOBS=${SANITIZER_JOBS:-8}
TEST_OMP_THREADS=${TEST_OMP_THREADS:-2}
RACECHECK_BINARIES=${RACECHECK_BINARIES:-test_cuda_gemm test_cuda_conv2d test_cuda_tensor_cores test_cuda_pool2d test_cuda_batchnorm test_cuda_reduce test_cuda_loss}
export SANITIZER_GTEST_FILTER=${SANITIZER_GTEST_FILTER:--*AgreesWith*:*BitIdentical*:*Repeat*}
TRAIN_EPOCHS=${TRAIN_EPOCHS:-2}
TRAIN_BATCH=${TRAIN_BATCH:-128}
BENCH_MIN_TIME=${BENCH_MIN_TIME:-0.02}
TORCH_PY=${TORCH_PY:-python3}
# Many test processes run at once on 16 cores: each gets 2 OpenMP threads, not 16.
export OMP_NUM_THREADS=$TEST_OMP_THREADS OPENBLAS_NUM_THREADS=$TEST_OMP_THREADS
# compute-sanitizer and nvidia-smi may live only in the toolkit's bin/.
export PATH="$PATH:${CUDA_HOME:-/usr/local/cuda}/bin"

COMMIT=$(sed -n 's/^commit: //p' "$WINDOW/BUILD.txt")
SHORT=${COMMIT:0:7}
if [ -n "${OUT:-}" ]; then RES=$OUT
else RES=${RESULTS:-$ROOT/bench/results/gpu-window-$(date -u +%Y%m%d-%H%M)-${SHORT:-unknown}}; fi
mkdir -p "$RES"
RES=$(readlink -f "$RES")
export LOGS
LOGS=$(mktemp -d)/logs
mkdir -p "$LOGS/tests" "$LOGS/sanitizer" "$LOGS/train" "$LOGS/bench"
# The programs and their libraries, unpacked next to the logs (deleted at the end).
PROG=$(dirname "$LOGS")/programs
window_unpack "$WINDOW" "$PROG" ||
  { echo "gpu_check: could not unpack $WINDOW/$WINDOW_ARCHIVE into $PROG" >&2; exit 1; }
SUMMARY=$RES/summary.md
export TESTS_TSV=$RES/tests.tsv
: >"$TESTS_TSV"
PROBLEMS=0
say() { echo "[gpu_check +$(($(date +%s) - START))s] $*"; }
md() { printf '%s\n' "$*" >>"$SUMMARY"; }
problem() { md "- **problem:** $*"; PROBLEMS=$((PROBLEMS + 1)); say "problem: $*"; }
# part_begin BUDGET: sets PART_DEADLINE = min(now + BUDGET, overall deadline - reserve).
part_begin() {
  PART_T0=$(date +%s)
  PART_DEADLINE=$((PART_T0 + $1))
  [ "$PART_DEADLINE" -le $((DEADLINE - RESERVE)) ] || PART_DEADLINE=$((DEADLINE - RESERVE))
  export PART_DEADLINE
}
part_left() { local l=$((PART_DEADLINE - $(date +%s))); [ "$l" -ge 1 ] || l=1; echo "$l"; }
# pack_logs: every log as logs.tar.gz; over 15 MiB (the tool brings back 16 MiB a file), each
# log is cut to its last MiB first.
pack_logs() {
  tar -czf "$RES/logs.tar.gz" -C "$(dirname "$LOGS")" logs 2>/dev/null || true
  if [ "$(stat -c %s "$RES/logs.tar.gz" 2>/dev/null || echo 0)" -gt $((15 * 1024 * 1024)) ]; then
    find "$LOGS" -type f -size +1M -exec sh -c 'tail -c 1M "$1" >"$1.t" && mv "$1.t" "$1"' _ {} \;
    tar -czf "$RES/logs.tar.gz" -C "$(dirname "$LOGS")" logs 2>/dev/null || true
  fi
}
part_end() {  # bring the logs back as they are now: a later cut loses nothing of this part
  md "" ; md "_($(($(date +%s) - PART_T0)) s)_"; md ""
  pack_logs
}

# ---------------------------------------------------------------- 1. device, driver, clocks
part_begin 20
GPU=0 DEVICE_NOTE="no device: nvidia-smi missing"
if command -v nvidia-smi >/dev/null; then
  if line=$(timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1) &&
     [ -n "$line" ]; then
    GPU=1 DEVICE_NOTE=$(head -n1 <<<"$line")
  else
    DEVICE_NOTE="no device: nvidia-smi failed: $(head -n1 <<<"$line")"
  fi
fi
# Where our programs find their libraries: the folder, the toolkit, and — only for a library
# still missing there, e.g. cuDNN outside /usr/local/cuda — PyTorch's nvidia-* wheels.
RUNLIB="$PROG/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib"
missing=$(for b in "$PROG"/bin/*; do LD_LIBRARY_PATH=$RUNLIB ldd "$b" 2>/dev/null; done |
          awk '/not found/ && $1 != "libcuda.so.1" {print $1}' | sort -u | tr '\n' ' ')
if [ -n "$missing" ] && command -v "$TORCH_PY" >/dev/null; then
  wheels=$("$TORCH_PY" -c 'import nvidia, os; print(":".join(os.path.join(p, d, "lib") for p in nvidia.__path__ for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p, d, "lib"))))' 2>/dev/null || true)
  [ -z "$wheels" ] || RUNLIB="$RUNLIB:$wheels"
fi
export RUNLIB
still=$(for b in "$PROG"/bin/*; do LD_LIBRARY_PATH=$RUNLIB ldd "$b" 2>/dev/null; done |
        awk '/not found/ && $1 != "libcuda.so.1" {print $1}' | sort -u | tr '\n' ' ')
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "device: $DEVICE_NOTE"
  cat "$WINDOW/BUILD.txt"
  echo "host: $(uname -srm), $(nproc) cores"
  echo "libraries missing before the wheel fallback: ${missing:-none}; still missing: ${still:-none}"
  echo "LD_LIBRARY_PATH for our programs: $RUNLIB"
  echo "compute-sanitizer: $(command -v compute-sanitizer || echo missing)"
  echo "python: $("$TORCH_PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tail -n1 || echo none)"
  if [ "$GPU" = 1 ]; then
    echo
    timeout 10 nvidia-smi --query-gpu=name,pci.bus_id,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.draw,power.limit,temperature.gpu,persistence_mode,compute_mode,mig.mode.current --format=csv 2>&1 || true
    echo
    timeout 10 nvidia-smi -q -d CLOCK,PERFORMANCE 2>&1 || true
    echo
    timeout 10 nvidia-smi 2>&1 || true
  fi
} >"$RES/environment.txt" 2>&1
{
  echo "# GPU window check, commit ${SHORT:-unknown}"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); device: $DEVICE_NOTE"
  echo "- built: $(sed -n 's/^built: //p' "$WINDOW/BUILD.txt"); tree $(sed -n 's/^tree: //p' "$WINDOW/BUILD.txt")"
  echo "- budget: $CHECK_BUDGET s; parts: tests $BUDGET_TESTS, sanitizer $BUDGET_SANITIZER, train $BUDGET_TRAIN, bench $BUDGET_BENCH"
} >"$SUMMARY"
[ -z "$still" ] || problem "libraries not found for our programs: $still (environment.txt)"
say "device: $DEVICE_NOTE; results in $RES"
part_end

# ---------------------------------------------------------------- 2. the real-GPU tests
part_begin "$BUDGET_TESTS"
md "## Tests (one process per test, ${TEST_TIMEOUT} s each, $TEST_JOBS at once)"
md ""
TEST_BINS=()
for b in "$PROG"/bin/test_cuda_* "$PROG"/bin/test_engine_cuda_*; do [ -x "$b" ] && TEST_BINS+=("$b"); done
jobs_file=$LOGS/tests/jobs.txt
: >"$jobs_file"
for b in "${TEST_BINS[@]}"; do
  # "Suite." lines, then "  Test" lines (parameterised ones carry "  # GetParam() = ..."); the
  # listing runs no test, so it proves the program loads its libraries.
  if ! listing=$(env LD_LIBRARY_PATH="$RUNLIB" timeout 20 "$b" --gtest_list_tests 2>"$LOGS/tests/list.err"); then
    problem "$(basename "$b") --gtest_list_tests failed: $(tail -n1 "$LOGS/tests/list.err")"
    continue
  fi
  awk -v bin="$b" '/^[^ ]/ {suite = $1} /^  [^ ]/ {print bin; print suite $1}' <<<"$listing" >>"$jobs_file"
done
say "tests: $(($(wc -l <"$jobs_file") / 2)) tests in ${#TEST_BINS[@]} binaries"
xargs -d '\n' -n 2 -P "$TEST_JOBS" bash "$ROOT/bench/gpu_check.sh" --run-test <"$jobs_file" || true
if [ -s "$TESTS_TSV" ]; then
  md "| binary | passed | failed | timeout | skipped | not run |"
  md "|---|---|---|---|---|---|"
  awk -F'\t' '{n[$1 "\t" $3]++; bins[$1] = 1} END {for (b in bins) printf "| %s | %d | %d | %d | %d | %d |\n", b, n[b "\tpassed"], n[b "\tfailed"], n[b "\ttimeout"], n[b "\tskipped"], n[b "\tnot-run"]}' "$TESTS_TSV" | sort >>"$SUMMARY"
  totals=$(awk -F'\t' '{n[$3]++} END {printf "%d passed, %d failed, %d timed out, %d skipped, %d not run", n["passed"], n["failed"], n["timeout"], n["skipped"], n["not-run"]}' "$TESTS_TSV")
  md ""
  md "**$totals** (of $(wc -l <"$TESTS_TSV"))."
  md ""
  # Why tests skipped, grouped by reason (without a GPU: one line for all).
  awk -F'\t' '$3 == "skipped" {n[$5]++} END {for (r in n) printf "- skipped %d: %s\n", n[r], r}' "$TESTS_TSV" >>"$SUMMARY"
  awk -F'\t' '$3 == "failed" || $3 == "timeout" {printf "- **%s** %s.%s: %s\n", $3, $1, $2, $5}' "$TESTS_TSV" | head -n 40 >>"$SUMMARY"
  bad=$(awk -F'\t' '$3 == "failed" || $3 == "timeout" || $3 == "not-run"' "$TESTS_TSV" | wc -l)
  [ "$bad" -eq 0 ] || PROBLEMS=$((PROBLEMS + 1))
  if [ "$GPU" = 1 ] && awk -F'\t' '$3 == "skipped"' "$TESTS_TSV" | grep -q .; then
    problem "tests skipped on a GPU machine (see the reasons above)"
  fi
  say "tests: $totals"
else
  problem "no test ran"
fi
part_end

# ---------------------------------------------------------------- 3. compute-sanitizer
part_begin "$BUDGET_SANITIZER"
md "## compute-sanitizer (POLYTASK_TEST_SMALL=1, filter '$SANITIZER_GTEST_FILTER')"
md ""
if [ "$GPU" = 0 ]; then
  md "skipped: $DEVICE_NOTE"
  echo "skipped: $DEVICE_NOTE" >"$RES/sanitizer.txt"
elif ! command -v compute-sanitizer >/dev/null; then
  problem "compute-sanitizer not on PATH"
else
  jobs_file=$LOGS/sanitizer/jobs.txt
  : >"$jobs_file"
  # memcheck over every kernel test binary first, racecheck and synccheck next, the engine
  # tests last: what the budget cuts is the least important.
  for b in "$PROG"/bin/test_cuda_*; do printf 'memcheck\n%s\n' "$b" >>"$jobs_file"; done
  for tool in racecheck synccheck; do
    for name in $RACECHECK_BINARIES; do
      [ ! -x "$PROG/bin/$name" ] || printf '%s\n%s\n' "$tool" "$PROG/bin/$name" >>"$jobs_file"
    done
  done
  for b in "$PROG"/bin/test_engine_cuda_*; do printf 'memcheck\n%s\n' "$b" >>"$jobs_file"; done
  xargs -d '\n' -n 2 -P "$SANITIZER_JOBS" bash "$ROOT/bench/gpu_check.sh" --sanitize <"$jobs_file" || true
  md "| tool | binary | result | errors | tests passed / failed / skipped | s |"
  md "|---|---|---|---|---|---|"
  : >"$RES/sanitizer.txt"
  while read -r tool; read -r bin; do
    log="$LOGS/sanitizer/$tool-$(basename "$bin").log"
    read -r rc secs 2>/dev/null <"$log.rc" || { rc=missing; secs=0; }
    nerr=$(grep -oE 'ERROR SUMMARY: [0-9]+' "$log" 2>/dev/null | tail -n1 | grep -oE '[0-9]+$' || true)
    passed=$(grep -oE '^\[  PASSED  \] [0-9]+' "$log" 2>/dev/null | grep -oE '[0-9]+$' || echo 0)
    failed=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$log" 2>/dev/null | grep -oE '[0-9]+' || echo 0)
    skipped=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$log" 2>/dev/null | grep -oE '[0-9]+' || echo 0)
    case $rc in
      0) result=clean ;;
      86) result="**ERRORS**" ;;
      124|137) result="**timeout**" ;;
      budget) result="not run (budget)" ;;
      *) result="**exit $rc**" ;;
    esac
    [ "$rc" = 0 ] || PROBLEMS=$((PROBLEMS + 1))
    md "| $tool | $(basename "$bin") | $result | ${nerr:-?} | $passed / $failed / $skipped | $secs |"
    { echo "== $tool $(basename "$bin"): $result, ${nerr:-?} errors, $secs s"
      grep -E '^=========|^\[  FAILED  \]' "$log" 2>/dev/null | head -n 60 || true; } >>"$RES/sanitizer.txt"
  done <"$jobs_file"
fi
part_end

# ---------------------------------------------------------------- 4. end to end
part_begin "$BUDGET_TRAIN"
md "## End to end: mnist-digit-parity on Fashion-MNIST, batch $TRAIN_BATCH, $TRAIN_EPOCHS epochs"
md ""
TRAIN_TSV=$RES/train.tsv
: >"$TRAIN_TSV"
DATA=$WINDOW/data/fashion-mnist
BENCH_BIN=$PROG/bin/polytask_train_bench
# run_json NAME CAP CMD...: JSON lines -> train.tsv as "NAME<TAB>line", stderr -> a log.
run_json() {
  local name=$1 cap=$2 left rc=0 t0
  shift 2
  left=$(part_left)
  if [ "$left" -lt 8 ]; then md "- $name: not run (part budget)"; PROBLEMS=$((PROBLEMS + 1)); return 0; fi
  [ "$left" -le "$cap" ] || left=$cap
  t0=$(date +%s)
  timeout -k 5 "$left" "$@" >"$LOGS/train/$name.jsonl" 2>"$LOGS/train/$name.log" || rc=$?
  sed "s/^/$name\t/" "$LOGS/train/$name.jsonl" >>"$TRAIN_TSV"
  say "train $name: exit $rc, $(($(date +%s) - t0)) s"
  if [ "$rc" != 0 ]; then
    md "- **$name: exit $rc** after $(($(date +%s) - t0)) s: $(tail -n1 "$LOGS/train/$name.log" | cut -c1-200)"
    PROBLEMS=$((PROBLEMS + 1))
  fi
}
ours() { env LD_LIBRARY_PATH="$RUNLIB" "$@"; }
# The programs start from the folder, with or without a device.
caps=$(ours "$BENCH_BIN" --capabilities 2>&1) || problem "polytask_train_bench --capabilities failed: $caps"
ours "$PROG/bin/polytask" train --help >/dev/null 2>&1 || problem "polytask train --help failed"
md "- polytask_train_bench --capabilities: \`$caps\`"
precisions=$(sed -n 's/.*"precisions": *"\([^"]*\)".*/\1/p' <<<"$caps" | tr ',' ' ')
graphs_modes="on off"
grep -q '"cuda_graphs_option": *true' <<<"$caps" || graphs_modes=default
torch_ok=0
torch_note=$("$TORCH_PY" -c 'import torch, numpy; assert torch.cuda.is_available(), "torch sees no GPU"' 2>&1 | tail -n1) && torch_ok=1
if [ "$GPU" = 0 ]; then
  md "- runs skipped: $DEVICE_NOTE"
else
  for p in ${precisions:-fp32}; do
    for g in $graphs_modes; do
      run_json "ours-$p-graphs_$g" 40 env LD_LIBRARY_PATH="$RUNLIB" "$BENCH_BIN" --device cuda \
        --preset mnist-digit-parity --data "$DATA" --batch-size "$TRAIN_BATCH" \
        --epochs "$TRAIN_EPOCHS" --precision "$p" --cuda-graphs "$g" --target 0.9
    done
  done
fi
if [ "$GPU" = 1 ] && [ "$torch_ok" = 1 ]; then
  peer=(env PYTHONUNBUFFERED=1 "$TORCH_PY" "$ROOT/bench/peers/pytorch_gpu_train.py" --device cuda
        --data "$DATA" --batch-size "$TRAIN_BATCH" --epochs "$TRAIN_EPOCHS" --target 0.9)
  run_json torch-eager-fp32 60 "${peer[@]}" --mode eager --precision fp32
  for p in ${precisions:-fp32}; do
    run_json "torch-graphs-$p" 60 "${peer[@]}" --mode graphs --precision "$p"
  done
else
  md "- PyTorch peer skipped: ${torch_note:-no device}"
fi
# Each balancing strategy's cost on the GPU (every one replays inside the step's CUDA graph):
# the steady epoch against static's, same preset and data, no evaluation. Timed while the part
# has time left; what it cannot fit is said, not counted as a problem.
if [ "$GPU" = 1 ]; then
  for b in $(ours "$PROG/bin/polytask" train --help 2>/dev/null |
             sed -n 's/.*gradient balancing at the fan-out: \([^(]*\) (default.*/\1/p' | tr -d ','); do
    if [ "$(part_left)" -lt 12 ]; then md "- balancer $b: not timed (part budget)"; continue; fi
    run_json "balancer-$b" 10 env LD_LIBRARY_PATH="$RUNLIB" "$BENCH_BIN" --device cuda \
      --preset mnist-digit-parity --data "$DATA" --batch-size "$TRAIN_BATCH" --limit 12800 \
      --epochs 3 --no-eval --balancer "$b"
  done
fi
if [ "$GPU" = 1 ]; then  # the CLI itself, with the switches a user would type
  run_json cli-tf32-nographs 40 env LD_LIBRARY_PATH="$RUNLIB" "$PROG/bin/polytask" train \
    --preset mnist-digit-parity --data "$DATA" --epochs 1 --device cuda --precision tf32 \
    --no-cuda-graphs --out "$LOGS/train/cli-run"
fi
# Data-parallel training through NCCL with one rank (POLYTASK_COMMUNICATOR=nccl): the whole
# device path — the loss and Gram-matrix sums the balancer reads, the gradient sum, all inside
# the step's CUDA graph — whose sums over one rank must give the plain run's bits.
if [ "$GPU" = 1 ]; then
  dp_args=(train --preset fashion-three-tasks --data "$DATA" --limit 6400 --epochs 2 --device cuda
           --balancer mgda --no-tensorboard)
  run_json dp-plain 40 env LD_LIBRARY_PATH="$RUNLIB" "$PROG/bin/polytask" "${dp_args[@]}" \
    --out "$LOGS/train/dp-plain"
  run_json dp-nccl-1rank 40 env LD_LIBRARY_PATH="$RUNLIB" POLYTASK_COMMUNICATOR=nccl \
    "$PROG/bin/polytask" "${dp_args[@]}" --out "$LOGS/train/dp-nccl"
  if cmp -s "$LOGS/train/dp-plain/model.safetensors" "$LOGS/train/dp-nccl/model.safetensors"; then
    md "- data-parallel through NCCL, one rank: the model is the plain run's, bit for bit"
  else
    md "- **data-parallel through NCCL, one rank: the model differs from the plain run's** (logs/train/dp-*.log)"
    PROBLEMS=$((PROBLEMS + 1))
  fi
fi
if [ -s "$TRAIN_TSV" ] && command -v python3 >/dev/null; then
  python3 - "$TRAIN_TSV" >>"$SUMMARY" <<'PY' || problem "could not summarise train.tsv"
import json, sys
runs = {}
for line in open(sys.argv[1]):
    name, _, rest = line.partition("\t")
    try:
        r = json.loads(rest)
    except ValueError:
        continue
    if r.get("record") == "summary":
        runs[name] = r
def f(v, spec=".3g"):
    return "—" if v is None else format(v, spec)
print("| run | s/epoch (steady) | epoch 1 s | images/s | test digit acc | parity acc | ours ÷ this |")
print("|---|---|---|---|---|---|---|")
for name, r in runs.items():
    acc = r.get("final_test_accuracy") or {}
    ratio = ""
    if name.startswith("torch-"):
        mode, prec = name.split("-")[1:3]
        ours = runs.get(f"ours-{prec}-graphs_on") or runs.get(f"ours-{prec}-graphs_default")
        if ours and ours.get("steady_epoch_s") and r.get("steady_epoch_s"):
            ratio = f"{ours['steady_epoch_s'] / r['steady_epoch_s']:.2f}"
    if name.startswith("balancer-"):  # this strategy's steady epoch against static's
        static = runs.get("balancer-static")
        if static and static.get("steady_epoch_s") and r.get("steady_epoch_s"):
            ratio = f"{r['steady_epoch_s'] / static['steady_epoch_s']:.2f} × static"
    print(f"| {name} | {f(r.get('steady_epoch_s'))} | {f(r.get('first_epoch_s'))} "
          f"| {f(r.get('steady_images_per_s'), ',.0f')} | {f(acc.get('digit'), '.4f')} "
          f"| {f(acc.get('parity'), '.4f')} | {ratio} |")
PY
fi
part_end

# ---------------------------------------------------------------- 5. kernels against the vendors
part_begin "$BUDGET_BENCH"
md "## Kernels against cuBLAS / cuDNN at the workload shapes (time_vs_*: our time ÷ theirs)"
md ""
# The dense layers of mnist-digit-parity at batch 128 (Auto tiles) and the four conv layers at
# batch 128, in every precision; each row also times the vendor back to back (time_vs_cublas,
# time_vs_cudnn, cudnn_time_over_ours counters).
# Row names end in "/manual_time", hence the trailing "/" instead of "$".
declare -A FILTER=(
  [bench_gpu_gemm]='^(sgemm|gemm_tf32|gemm_bf16)/(cublas|ours)/[A-Z]+/(128x128x1600|128x1600x128|1600x128x128|128x10x128|128x128x10|10x128x128)/'
  [bench_gpu_conv]='^conv/[^/]+/(cudnn|cudnn_tf32|ours|ours_tf32|ours_bf16)/[^/]+/n128/'
)
for name in bench_gpu_gemm bench_gpu_conv; do
  b=$PROG/bin/$name
  [ -x "$b" ] || { problem "$name missing from the window"; continue; }
  n=$(env LD_LIBRARY_PATH="$RUNLIB" timeout 20 "$b" --benchmark_list_tests --benchmark_filter="${FILTER[$name]}" 2>/dev/null | wc -l || true)
  md "- $name: $n benchmarks match the workload filter"
  [ "$n" -gt 0 ] || problem "$name: the filter matches no benchmark"
  [ "$GPU" = 1 ] || continue
  left=$(part_left)
  [ "$left" -ge 5 ] || { md "- $name: not run (part budget)"; PROBLEMS=$((PROBLEMS + 1)); continue; }
  rc=0
  env LD_LIBRARY_PATH="$RUNLIB" timeout -k 5 "$left" "$b" --benchmark_filter="${FILTER[$name]}" \
    --benchmark_min_time="$BENCH_MIN_TIME" --benchmark_out="$LOGS/bench/$name.json" \
    --benchmark_out_format=json >"$LOGS/bench/$name.log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || problem "$name: exit $rc ($(tail -n1 "$LOGS/bench/$name.log" | cut -c1-200))"
done
if [ "$GPU" = 0 ]; then
  md "- runs skipped: $DEVICE_NOTE"
  echo '{}' >"$RES/bench.json"
elif command -v python3 >/dev/null; then
  python3 - "$LOGS"/bench/*.json >"$RES/bench.json" 2>/dev/null <<'PY' || true
import json, os, sys
json.dump({os.path.basename(p)[:-5]: json.load(open(p)) for p in sys.argv[1:] if os.path.exists(p)}, sys.stdout, indent=1)
PY
  python3 - "$RES/bench.json" >>"$SUMMARY" <<'PY' || problem "benchmarks reported errors, or bench.json could not be read"
import json, sys
rows, errors = [], []
for binary, data in json.load(open(sys.argv[1])).items():
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            errors.append(f"{b['name']}: {b.get('error_message')}")
        for key, value in b.items():
            # time_vs_cublas / time_vs_cudnn: our time ÷ theirs; cudnn_time_over_ours: the inverse.
            if "_vs_" in key or "_over_" in key:
                rows.append(f"| {b['name']} | {b.get('real_time', 0):.4g} {b.get('time_unit', '')} | {key} | {value:.3g} |")
print("| benchmark | time | counter | ratio |")
print("|---|---|---|---|")
print("\n".join(rows) if rows else "| (no ratio counter) | | | |")
for e in errors[:20]:
    print(f"- **error** {e}")
sys.exit(1 if errors else 0)
PY
fi
part_end

# ---------------------------------------------------------------- verdict
if [ "$PROBLEMS" -eq 0 ]; then verdict="PASS"; else verdict="$PROBLEMS PROBLEMS"; fi
[ "$GPU" = 1 ] || verdict="$verdict — REHEARSAL, no device: GPU steps skipped"
md "**Verdict: $verdict.** Total $(($(date +%s) - START)) s of $CHECK_BUDGET s."
pack_logs
rm -rf "$(dirname "$LOGS")"
say "done in $(($(date +%s) - START)) s: $verdict; files in $RES: $(cd "$RES" && ls | tr '\n' ' ')"
cat "$SUMMARY"
[ "$PROBLEMS" -eq 0 ]
