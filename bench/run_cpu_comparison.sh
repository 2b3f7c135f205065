#!/usr/bin/env bash
# Whole training epochs on the CPU: `polytask train` against its two peers, in one command —
# Keras 3 on TensorFlow-CPU trained the tutorial's way (bench/peers/keras_tutorial.py) and
# PyTorch 2.x (bench/peers/pytorch_tutorial.py), both from the git-ignored virtual environment
# that bench/peers/setup_venv.sh creates (several GB: never in CI).
#
#   bench/run_cpu_comparison.sh          # both presets, batches 128 32 256, 2 rounds of 2 epochs
#   SMOKE=1 bench/run_cpu_comparison.sh  # 2,000 examples per split, batch 128, 1 round: tests
#                                        # this script in about two minutes; figures meaningless
#   PRESETS=mnist-digit-parity BATCHES=128 ROUNDS=3 bench/run_cpu_comparison.sh
#
# Settings (environment):
#   PRESETS  ("mnist-digit-parity fashion-type-brightness"), BATCHES ("128 32 256")
#   ROUNDS   (2) interleaved rounds per preset and batch; each round runs polytask, Keras and
#            PyTorch once, in an order rotated every round
#   EPOCHS   (2) epochs per run; a run's figure is its LAST epoch (the first carries one-off
#            work: allocation, TensorFlow's tracing), the table shows the median over rounds
#   THREADS  (nproc) CPU threads for every contender; LIMIT (0: all) examples per split
#   DATA     (/usr/share/datasets/fashion-mnist), PEERS_VENV ($ROOT/.peers-venv),
#   BUILD    ($ROOT/build-bench), RESULTS (bench/results/cpu-peers-<UTC date>-<commit>.md;
#            with SMOKE=1 a file under /tmp, not meant for committing)
#   WAIT_IDLE=0: do not wait for idle CPUs before each measurement (the default waits until
#            the CPUs are >= IDLE_PCT % idle (85) over 2 x 2 s, at most WAIT_MAX s (900; 20
#            with SMOKE=1) each)
#
# An epoch is 54,000 trained + 6,000 validated images (validation split 0.1, from the end of
# the training set, as Keras takes it); its seconds include the validation pass on all three.
# The test pass is 10,000 images at the same batch size, timed inside each process: Keras'
# model.evaluate and PyTorch's no_grad loop (the last of two passes), polytask train's own test
# pass ("seconds" in the run's test_metrics.json).
#
# Timings on a shared machine drift from run to run: compare rows of the same run only, and
# run it when nothing else is compiling (the load average is recorded before and after).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SMOKE="${SMOKE:-0}"
if [[ "$SMOKE" == 1 ]]; then
  PRESETS="${PRESETS:-mnist-digit-parity fashion-type-brightness}"
  BATCHES="${BATCHES:-128}" ROUNDS="${ROUNDS:-1}" EPOCHS="${EPOCHS:-2}" LIMIT="${LIMIT:-2000}"
  WAIT_MAX="${WAIT_MAX:-20}"
fi
PRESETS="${PRESETS:-mnist-digit-parity fashion-type-brightness}"
BATCHES="${BATCHES:-128 32 256}"
ROUNDS="${ROUNDS:-2}"
EPOCHS="${EPOCHS:-2}"
LIMIT="${LIMIT:-0}"
THREADS="${THREADS:-$(nproc)}"
DATA="${DATA:-/usr/share/datasets/fashion-mnist}"
VENV="${PEERS_VENV:-$ROOT/.peers-venv}"
BUILD="${BUILD:-$ROOT/build-bench}"
POLYTASK="$BUILD/cli/polytask"
# (Not "$([[ ... ]] && echo ...)" in an assignment: its status 1 would stop the script here.)
SMOKE_NOTE=""
if [[ "$SMOKE" == 1 ]]; then SMOKE_NOTE=" SMOKE=1"; fi
OUT="$(mktemp -d)"
# The runs are removed once the report is written; a failure keeps them for a look.
trap 'rc=$?; if ((rc == 0)); then rm -rf "$OUT"; else echo "runs kept in $OUT" >&2; fi' EXIT

die() { echo "run_cpu_comparison.sh: error: $*" >&2; exit 1; }
fail_with_log() {  # log, message: the log's end, then one line saying what failed
  tail -n 15 "$1" | sed 's/^/   | /' >&2
  die "$2 (log above)"
}

# On a shared 2-core machine a concurrent compile does not just halve our speed: spinning
# OpenMP/OpenBLAS threads that lose their core slow a step down 10x. So each measurement
# starts only once the CPUs have been idle for two 2-second windows in a row.
cpu_idle_pct() {  # idle % of all CPUs over the next 2 s
  local a b
  read -r -a a < /proc/stat; sleep 2; read -r -a b < /proc/stat
  local busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
  local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) ))
  echo $(( 100 * idle / (busy + idle > 0 ? busy + idle : 1) ))
}
wait_idle() {
  [[ "${WAIT_IDLE:-1}" == 1 ]] || return 0
  local start=$SECONDS calm=0
  while (( calm < 2 )); do
    if (( $(cpu_idle_pct) >= ${IDLE_PCT:-85} )); then calm=$((calm + 1)); else calm=0; fi
    if (( SECONDS - start > ${WAIT_MAX:-900} )); then
      echo "   (CPUs still busy after ${WAIT_MAX:-900} s: measuring anyway, under load $(cut -d' ' -f1 /proc/loadavg))"
      return 0
    fi
  done
  (( SECONDS - start > 5 )) && echo "   (waited $((SECONDS - start)) s for idle CPUs)"
  return 0
}


# ---- prerequisites
PY="$VENV/bin/python"
[[ -x "$PY" ]] || die "no peers' virtual environment at $VENV: run bench/peers/setup_venv.sh"
"$PY" -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("tensorflow", "keras", "torch", "numpy")))' ||
  die "$VENV lacks tensorflow, keras, torch or numpy: run bench/peers/setup_venv.sh"
[[ -e "$DATA/train-images-idx3-ubyte.gz" || -e "$DATA/train-images-idx3-ubyte" ]] ||
  die "no Fashion-MNIST IDX files in $DATA (set DATA)"

# ---- build: the CLI only, without CUDA (a CPU benchmark; nvcc would add many minutes)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPOLYTASK_BUILD_TESTS=OFF \
  -DPOLYTASK_ENABLE_CUDA=OFF >"$OUT/cmake.log" 2>&1 || fail_with_log "$OUT/cmake.log" "cmake failed"
ninja -C "$BUILD" polytask_cli >"$OUT/ninja.log" 2>&1 || fail_with_log "$OUT/ninja.log" "build failed"

# ---- environment. polytask runs with the OpenBLAS its RPATH names (the OpenMP build); no
# LD_LIBRARY_PATH, which would override that choice.
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
unset LD_LIBRARY_PATH
# --threads is newer than this script: passed when this build's train lists it. (Help captured
# first: under pipefail, grep -q closing the pipe early could fail the test.)
TRAIN_HELP="$("$POLYTASK" train --help)"
THREAD_ARGS=()
if [[ "$TRAIN_HELP" == *"--threads "* ]]; then THREAD_ARGS=(--threads "$THREADS"); fi
LIMIT_ARGS=()
if (( LIMIT > 0 )); then LIMIT_ARGS=(--limit "$LIMIT"); fi

COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -n1 || true)"
DATE="$(date -u +%Y-%m-%d)"
if [[ "$SMOKE" == 1 ]]; then
  RESULTS="${RESULTS:-${TMPDIR:-/tmp}/cpu-peers-smoke-$DATE-$COMMIT.md}"
else
  RESULTS="${RESULTS:-$ROOT/bench/results/cpu-peers-$DATE-$COMMIT.md}"
fi

# The machine, as the report's header records it ("key<TAB>value" lines).
cpu_field() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }
FLAGS=" $(cpu_field flags) "
WANTED_FLAGS="avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_bf16 amx_int8"
PRESENT_FLAGS=""
for flag in $WANTED_FLAGS; do [[ "$FLAGS" == *" $flag "* ]] && PRESENT_FLAGS+="${PRESENT_FLAGS:+ }$flag"; done
BLAS_LIB="$(ldd "$POLYTASK" | awk '/libopenblas/ { print $3; exit }')"
BLAS_CORE="(polytask links no OpenBLAS)"
if [[ -n "$BLAS_LIB" ]]; then
  # Asked of the very library polytask loads, in this environment (OPENBLAS_CORETYPE included).
  BLAS_CORE="$("$PY" - "$BLAS_LIB" <<'EOF'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_corename.restype = lib.openblas_get_config.restype = ctypes.c_char_p
print(f"{lib.openblas_get_corename().decode()} ({lib.openblas_get_config().decode()}, {sys.argv[1]})")
EOF
)"
fi
{
  printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf 'commit\t%s%s\n' "$COMMIT" "${DIRTY:+ (working tree modified)}"
  printf 'cpu\t%s (family %s, model %s, stepping %s)\n' "$(cpu_field 'model name')" \
    "$(cpu_field 'cpu family')" "$(cpu_field model)" "$(cpu_field stepping)"
  printf 'flags\t%s\n' "${PRESENT_FLAGS:-(none of: $WANTED_FLAGS)}"
  printf 'cpus\t%s available (nproc), threads %s for every contender\n' "$(nproc)" "$THREADS"
  printf 'blas\t%s; OPENBLAS_CORETYPE=%s\n' "$BLAS_CORE" "${OPENBLAS_CORETYPE:-unset}"
  # An OpenBLAS older than the CPU falls back to generic SSE kernels without saying so.
  if [[ "$BLAS_CORE" =~ ^(Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Katmai) ]] &&
     [[ " $PRESENT_FLAGS " == *" avx2 "* ]]; then
    printf 'blas note\t%s\n' "OpenBLAS does not recognise this CPU and runs its generic ${BLAS_CORE%% *} kernels; polytask's float path does not use it (its own kernels: the cpu kernels line), only the double reference of its tests"
  fi
  printf 'polytask threads\tOMP_NUM_THREADS=OPENBLAS_NUM_THREADS=%s%s\n' "$THREADS" \
    "${THREAD_ARGS[*]:+ and ${THREAD_ARGS[*]}}"
  printf 'settings\tEPOCHS=%s ROUNDS=%s LIMIT=%s DATA=%s%s\n' "$EPOCHS" "$ROUNDS" "$LIMIT" "$DATA" \
    "$SMOKE_NOTE"
  printf 'load before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.tsv"
sed 's/\t/: /' "$OUT/machine.tsv" | sed 's/^/== /'

# ---- one measurement each; the files land in $OUT/<preset>/<batch>/
run_polytask() {  # preset, batch, round, dir
  local run="$4/polytask-r$3"
  wait_idle
  "$POLYTASK" train --preset "$1" --data "$DATA" --epochs "$EPOCHS" --batch-size "$2" \
    --val-split 0.1 --device cpu --seed 0 --out "$run" "${LIMIT_ARGS[@]}" "${THREAD_ARGS[@]}" \
    >"$run.log" 2>&1 || fail_with_log "$run.log" "polytask train failed ($1, batch $2)"
}
run_peer() {  # peer (keras|pytorch), preset, batch, round, dir
  local log="$5/$1-r$4"
  wait_idle
  "$PY" "$ROOT/bench/peers/${1}_tutorial.py" --preset "$2" --batch-size "$3" --epochs "$EPOCHS" \
    --threads "$THREADS" --limit "$LIMIT" --data "$DATA" >"$log.jsonl" 2>"$log.stderr" ||
    fail_with_log "$log.stderr" "the $1 peer failed ($2, batch $3)"
}
last_epoch() {  # contender, dir, round: "epoch s / test s" of a finished run, for the progress line
  "$PY" "$ROOT/bench/cpu_comparison_table.py" --progress "$1" "$2" "$3"
}

CONTENDERS=(polytask keras pytorch)
CPU_KERNELS=""  # polytask's own "cpu kernels: ..." line, when it prints one
for preset in $PRESETS; do
  for batch in $BATCHES; do
    dir="$OUT/$preset/$batch"
    mkdir -p "$dir"
    echo "$preset $batch" >>"$OUT/configs.txt"  # the tables keep this order
    echo "-- $preset, batch $batch"
    for ((r = 1; r <= ROUNDS; ++r)); do
      for ((i = 0; i < ${#CONTENDERS[@]}; ++i)); do
        # Rotated each round, so that no contender always runs right after another's heat.
        who="${CONTENDERS[(i + r - 1) % ${#CONTENDERS[@]}]}"
        if [[ "$who" == polytask ]]; then
          run_polytask "$preset" "$batch" "$r" "$dir"
          [[ -n "$CPU_KERNELS" ]] ||
            CPU_KERNELS="$(grep -m1 -h '^cpu kernels:' "$dir/polytask-r$r.log" || true)"
        else
          run_peer "$who" "$preset" "$batch" "$r" "$dir"
        fi
        printf '   round %s  %-9s %s\n' "$r" "$who" "$(last_epoch "$who" "$dir" "$r")"
      done
    done
  done
done
{
  printf 'polytask cpu kernels\t%s\n' "${CPU_KERNELS:-(polytask printed no 'cpu kernels:' line)}"
  printf 'load after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$OUT/machine.tsv"
tail -n 2 "$OUT/machine.tsv" | sed 's/\t/: /; s/^/== /'

# ---- the tables, printed and written as Markdown
mkdir -p "$(dirname "$RESULTS")"
COMMAND="PRESETS='$PRESETS' BATCHES='$BATCHES' ROUNDS=$ROUNDS EPOCHS=$EPOCHS THREADS=$THREADS"
COMMAND+=" LIMIT=$LIMIT$SMOKE_NOTE bench/run_cpu_comparison.sh"
"$PY" "$ROOT/bench/cpu_comparison_table.py" --report "$OUT" --markdown "$RESULTS" \
  --epochs "$EPOCHS" --command "$COMMAND"
echo "== written: $RESULTS"
