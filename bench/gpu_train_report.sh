#!/usr/bin/env bash
# bench/gpu_train_report.sh — the end-to-end GPU training benchmark in one command, for the H100
# machine of the device tool: polytask (polytask_train_bench, bench/gpu_train_bench.cpp) against
# PyTorch on the same GPU (bench/peers/pytorch_gpu_train.py: eager, CUDA graphs, torch.compile),
# whole epochs of mnist-digit-parity on Fashion-MNIST at batch 128 and 1024, every other preset
# at batch 128 as a speed row, and the floor of an epoch (FLOPs and bytes from the model over the
# GPU's FP32 rate and bandwidth measured in the same run, bench/gpu_train_floor.py).
# Writes bench/results/gpu-train-<UTC date>-<short commit>.md (+ the raw JSON lines and logs in
# bench/results/gpu-train-<UTC date>-<short commit>/), copies them to $OUT when set, and prints
# the report last. See `--help` and bench/README.md ("End-to-end GPU training benchmark").
#
# Budget: everything runs under one deadline (REPORT_BUDGET, 540 s) so the report is written
# before the device tool's 10-minute limit; each run gets a time cap and what is left, runs that
# no longer fit are listed as not run, and a run cut short still reports the epochs it finished
# (one JSON line per epoch, flushed as it goes).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash bench/gpu_train_report.sh [--dry-run] [--results-dir DIR] [--build-dir DIR]

Builds polytask_train_bench (through bench/gpu_suite.sh, build only: .deps unpacked when the
system lacks a library), then on the GPU: polytask and PyTorch (eager, graphs, compile) training
mnist-digit-parity on Fashion-MNIST at each batch in BATCHES, the other presets as a speed row,
the GPU's FP32/TF32/BF16 matmul rates and copy bandwidth; writes a Markdown report.

Environment (defaults in brackets):
  DATA_DIR        Fashion-MNIST IDX .gz files [/usr/share/datasets/fashion-mnist, else
                  .deps/fashion-mnist (bench/fetch_gpu_deps.sh copies them there)]
  REPORT_BUDGET   seconds for everything [540]; the build gets at most BUILD_BUDGET [300]
  BATCHES         mnist-digit-parity batch sizes ["128 1024"]
  EPOCHS          epochs at batch <= 256 [15]; EPOCHS_LARGE for larger batches [30]
  EAGER_EPOCHS    at most this many epochs for PyTorch eager, the slowest mode [10]
  MODES           PyTorch modes ["eager graphs compile"]
  COMPILE_MODE    torch.compile mode [reduce-overhead]
  TARGET          test accuracy of the digit head for "time to target" [0.9]
  OTHER_PRESETS   1: every other preset at batch 128, OTHER_EPOCHS [2] epochs; 0: skip [1]
  PRECISIONS      ours: precisions to run [every one `polytask_train_bench --capabilities` lists]
  TORCH_PRECISIONS  PyTorch (graphs mode, first batch) in other precisions than fp32
                  [those of PRECISIONS other than fp32]
  BIN             a polytask_train_bench to use (skips the build)
  BUILD_DIR       [build-gpu-suite, bench/gpu_suite.sh's: reused when there]
  TORCH_PY        python with torch [first of python3, /usr/bin/python3 that imports torch]
  RESULTS_DIR     raw logs [bench/results/gpu-train-<UTC date>-<short commit>]
  POLYTASK_COMMIT commit id when the tree has no .git (else a COMMIT file, else "unknown")
  DEVICE          cuda, or cpu for a smoke test of the whole pipeline without a GPU (also
                  LIMIT [2000 on cpu] examples per split and 2 epochs; graphs/compile fail and
                  say so) [cuda]
  DRY_RUN=1       print the commands instead of running them
  CAP_OURS=120 CAP_EAGER=150 CAP_GRAPHS=150 CAP_COMPILE=240 CAP_OTHER=60   seconds per run

Exit status: 0 when the report was written (whatever the numbers), 1 without a GPU (unless
DEVICE=cpu) or when nothing could be built.
EOF
}

DRY_RUN=${DRY_RUN:-0}
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --results-dir) RESULTS_DIR=$2; shift ;;
    --results-dir=*) RESULTS_DIR=${1#*=} ;;
    --build-dir) BUILD_DIR=$2; shift ;;
    --build-dir=*) BUILD_DIR=${1#*=} ;;
    *) echo "gpu_train_report: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.."
ROOT=$(pwd)
START_EPOCH=$(date +%s)
REPORT_BUDGET=${REPORT_BUDGET:-540}
BUILD_BUDGET=${BUILD_BUDGET:-300}
DEADLINE=$((START_EPOCH + REPORT_BUDGET))
RESERVE=25  # seconds kept for the report and the copy to $OUT
DEVICE=${DEVICE:-cuda}
BATCHES=${BATCHES:-128 1024}
EPOCHS=${EPOCHS:-15}
EPOCHS_LARGE=${EPOCHS_LARGE:-30}
EAGER_EPOCHS=${EAGER_EPOCHS:-10}
MODES=${MODES:-eager graphs compile}
COMPILE_MODE=${COMPILE_MODE:-reduce-overhead}
TARGET=${TARGET:-0.9}
OTHER_PRESETS=${OTHER_PRESETS:-1}
OTHER_EPOCHS=${OTHER_EPOCHS:-2}
CAP_OURS=${CAP_OURS:-120}
CAP_EAGER=${CAP_EAGER:-150}
CAP_GRAPHS=${CAP_GRAPHS:-150}
CAP_COMPILE=${CAP_COMPILE:-240}
CAP_OTHER=${CAP_OTHER:-60}
LIMIT=${LIMIT:-0}
BUILD_DIR=${BUILD_DIR:-build-gpu-suite}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
DEPS_ROOT=${DEPS_ROOT:-/tmp/polytask-deps}
if [ "$DEVICE" = cpu ]; then
  # The smoke test: the whole pipeline on a slice of the data, on the CPU.
  [ "$LIMIT" != 0 ] || LIMIT=2000
  EPOCHS=${SMOKE_EPOCHS:-2} EPOCHS_LARGE=${SMOKE_EPOCHS:-2} EAGER_EPOCHS=${SMOKE_EPOCHS:-2}
  OTHER_EPOCHS=1
  PRECISIONS=${PRECISIONS:-fp32}  # TF32/BF16 are tensor-core settings: GPU only
fi

say() { echo "[gpu_train_report $(date -u +%H:%M:%S)] $*" >&2; }
remaining() { echo $((DEADLINE - RESERVE - $(date +%s))); }

# ---------------------------------------------------------------- identity
DATE_UTC=$(date -u '+%Y-%m-%d %H:%M UTC')
DATE_TAG=$(date -u '+%Y%m%d-%H%M')
COMMIT=unknown DIRTY=unknown
if [ -n "${POLYTASK_COMMIT:-}" ]; then
  COMMIT=$POLYTASK_COMMIT DIRTY=${POLYTASK_DIRTY:-unknown}
elif [ -e .git ] && command -v git >/dev/null 2>&1 && git rev-parse HEAD >/dev/null 2>&1; then
  COMMIT=$(git rev-parse HEAD)
  if [ -z "$(git status --porcelain 2>/dev/null)" ]; then DIRTY=clean; else DIRTY=dirty; fi
elif [ -f COMMIT ]; then
  COMMIT=$(head -n1 COMMIT | tr -d '[:space:]') DIRTY=${POLYTASK_DIRTY:-unknown}
fi
SHORT=${COMMIT:0:7}
[ "$COMMIT" != unknown ] || SHORT=unknown
STEM=gpu-train-$DATE_TAG-$SHORT
[ "$DEVICE" = cuda ] || STEM=$STEM-$DEVICE-smoke
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results/$STEM}
case $RESULTS_DIR in /*) ;; *) RESULTS_DIR=$ROOT/$RESULTS_DIR ;; esac
REPORT=$(dirname "$RESULTS_DIR")/$STEM.md
[ -z "${REPORT_FILE:-}" ] || REPORT=$REPORT_FILE

GPU=0 GPU_NOTE="" DRIVER=""
if ! command -v nvidia-smi >/dev/null 2>&1; then
  GPU_NOTE="no GPU: nvidia-smi missing"
elif ! line=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1) ||
     [ -z "$line" ]; then
  GPU_NOTE="no GPU: nvidia-smi failed: $(echo "$line" | head -n1)"
else
  GPU=1
  GPU_NOTE=$(echo "$line" | head -n1 | awk -F', *' '{printf "%s, %s", $1, $3}')
  DRIVER=$(echo "$line" | head -n1 | awk -F', *' '{print $2}')
fi

if [ "$DEVICE" = cuda ] && [ "$GPU" = 0 ] && [ "$DRY_RUN" != 1 ]; then
  echo "gpu_train_report: $GPU_NOTE — nothing to measure here. This benchmark runs on the GPU" \
       "machine (bench/README.md, 'End-to-end GPU training benchmark'); DRY_RUN=1 prints its" \
       "commands, DEVICE=cpu runs the whole pipeline as a CPU smoke test." >&2
  exit 1
fi

# Python with torch (the GPU image's python3 has it; Debian's is /usr/bin/python3), and one
# with tomllib (3.11+) for the floor model.
TORCH_PY=${TORCH_PY:-}
if [ -z "$TORCH_PY" ]; then
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch, numpy' >/dev/null 2>&1; then
      TORCH_PY=$p; break
    fi
  done
fi
FLOOR_PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import tomllib' >/dev/null 2>&1; then
    FLOOR_PY=$p; break
  fi
done

# Fashion-MNIST.
if [ -z "${DATA_DIR:-}" ]; then
  DATA_DIR=/usr/share/datasets/fashion-mnist
  [ -e "$DATA_DIR/train-images-idx3-ubyte.gz" ] || [ -e "$DATA_DIR/train-images-idx3-ubyte" ] ||
    DATA_DIR=$ROOT/.deps/fashion-mnist
fi
DATA_NOTE=$DATA_DIR
if ! [ -e "$DATA_DIR/train-images-idx3-ubyte.gz" ] && ! [ -e "$DATA_DIR/train-images-idx3-ubyte" ]; then
  DATA_NOTE="MISSING ($DATA_DIR has no train-images-idx3-ubyte[.gz]; run bench/fetch_gpu_deps.sh here and carry .deps)"
fi

RAW=$RESULTS_DIR
if [ "$DRY_RUN" = 1 ]; then
  RAW=${TMPDIR:-/tmp}/gpu-train-dry-run
  REPORT=$RAW/$STEM.md
fi
mkdir -p "$RAW"
RUNS=$RAW/runs.tsv
: >"$RUNS"
say "device: ${GPU_NOTE:-?} ${DRIVER:+(driver $DRIVER)}; DEVICE=$DEVICE; commit $SHORT ($DIRTY)"
say "data: $DATA_NOTE; torch python: ${TORCH_PY:-none}; raw logs: $RAW"
[ "$DRY_RUN" != 1 ] || say "DRY_RUN=1: printing the commands, running nothing"

# run_json NAME CAP CMD... : runs CMD (JSON lines on stdout -> NAME.jsonl, stderr -> NAME.log)
# under min(CAP, what is left); appends "NAME<TAB>rc<TAB>seconds<TAB>command" to runs.tsv.
run_json() {
  local name=$1 cap=$2
  shift 2
  local cmd
  cmd=$(printf '%q ' "$@")
  if [ "$DRY_RUN" = 1 ]; then
    echo "  [$name, cap ${cap}s] $cmd"
    printf '%s\t%s\t%s\t%s\n' "$name" dry 0 "$cmd" >>"$RUNS"
    return 0
  fi
  local left
  left=$(remaining)
  if [ "$left" -lt 15 ]; then
    say "$name: not run (time budget)"
    printf '%s\t%s\t%s\t%s\n' "$name" budget 0 "$cmd" >>"$RUNS"
    return 0
  fi
  [ "$left" -le "$cap" ] || left=$cap
  say "$name (at most ${left}s) ..."
  local t0 rc=0
  t0=$(date +%s)
  timeout -k 10 "$left" "$@" >"$RAW/$name.jsonl" 2>"$RAW/$name.log" || rc=$?
  local secs=$(($(date +%s) - t0))
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$cmd" >>"$RUNS"
  say "$name: exit $rc, ${secs}s"
  [ "$rc" = 0 ] || tail -n 3 "$RAW/$name.log" >&2 || true
}

# ---------------------------------------------------------------- build
BUILD_NOTE=""
if [ -n "${BIN:-}" ]; then
  BUILD_NOTE="given: $BIN"
else
  BIN=$BUILD_DIR/bench/polytask_train_bench
  werror=OFF  # an existing build keeps its setting (a change would rebuild everything)
  if [ -f "$BUILD_DIR/CMakeCache.txt" ]; then
    werror=$(sed -n 's/^POLYTASK_WARNINGS_AS_ERRORS:BOOL=//p' "$BUILD_DIR/CMakeCache.txt" | head -n1)
    werror=${werror:-OFF}
  fi
  budget=$(remaining)
  [ "$budget" -le "$BUILD_BUDGET" ] || budget=$BUILD_BUDGET
  # env -u OUT: the suite would leave its own summary and logs in $OUT.
  build_cmd=(env -u OUT SKIP_TESTS=1 SKIP_BENCH=1 SKIP_SANITIZER=1 BUILD_TARGETS=polytask_train_bench
             "BUILD_DIR=$BUILD_DIR" "RESULTS_DIR=$RAW/build" "SUITE_BUDGET=$budget" "WERROR=$werror"
             bash "$ROOT/bench/gpu_suite.sh")
  if [ "$DRY_RUN" = 1 ]; then
    echo "  [build] $(printf '%q ' "${build_cmd[@]}")"
  else
    say "build: bench/gpu_suite.sh, target polytask_train_bench, in $BUILD_DIR (at most ${budget}s) ..."
    t0=$(date +%s)
    rc=0
    "${build_cmd[@]}" >"$RAW/build.log" 2>&1 || rc=$?
    BUILD_NOTE="bench/gpu_suite.sh (build only) in $(basename "$BUILD_DIR"), $(($(date +%s) - t0)) s, exit $rc"
    say "build: exit $rc"
  fi
  # The suite puts libraries the system lacks on LD_LIBRARY_PATH for its own processes only.
  if [ -d "$DEPS_ROOT/runtime" ]; then
    export LD_LIBRARY_PATH="$DEPS_ROOT/runtime${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
if [ "$DRY_RUN" != 1 ] && ! [ -x "$BIN" ]; then
  echo "gpu_train_report: no polytask_train_bench at $BIN ($BUILD_NOTE); see $RAW/build.log" >&2
  tail -n 30 "$RAW/build.log" 2>/dev/null >&2 || true
  exit 1
fi

CAPS='{"precisions": "fp32", "cuda_graphs_option": false}'
if [ -x "$BIN" ]; then  # also in a dry run, when the binary is there
  CAPS=$("$BIN" --capabilities 2>/dev/null || echo "$CAPS")
fi
if [ -z "${PRECISIONS:-}" ]; then
  PRECISIONS=$(echo "$CAPS" | sed -n 's/.*"precisions": *"\([^"]*\)".*/\1/p' | tr ',' ' ')
  PRECISIONS=${PRECISIONS:-fp32}
fi
TORCH_PRECISIONS=${TORCH_PRECISIONS-$(for p in $PRECISIONS; do [ "$p" = fp32 ] || echo -n "$p "; done)}
say "ours: precisions $PRECISIONS; capabilities $CAPS"

limit_args=()
[ "$LIMIT" = 0 ] || limit_args=(--limit "$LIMIT")
epochs_for() { if [ "$1" -le 256 ]; then echo "$EPOCHS"; else echo "$EPOCHS_LARGE"; fi; }
ours() {  # NAME CAP ARGS...
  local name=$1 cap=$2
  shift 2
  run_json "$name" "$cap" "$BIN" --device "$DEVICE" "${limit_args[@]}" "$@"
}
torch_run() {  # NAME CAP MODE BATCH PRECISION EPOCHS
  local name=$1 cap=$2 mode=$3 batch=$4 precision=$5 epochs=$6
  if [ -z "$TORCH_PY" ] && [ "$DRY_RUN" != 1 ]; then
    say "$name: not run (no python3 with torch and numpy)"
    printf '%s\t%s\t%s\t%s\n' "$name" notorch 0 "-" >>"$RUNS"
    return 0
  fi
  PYTHONUNBUFFERED=1 run_json "$name" "$cap" "${TORCH_PY:-python3}" "$ROOT/bench/peers/pytorch_gpu_train.py" \
    --mode "$mode" --batch-size "$batch" --precision "$precision" --epochs "$epochs" \
    --data "$DATA_DIR" --device "$DEVICE" --target "$TARGET" --compile-mode "$COMPILE_MODE" \
    "${limit_args[@]}"
}

# ---------------------------------------------------------------- the GPU's ceilings
if [ "$DEVICE" = cuda ] && [ -n "$TORCH_PY$([ "$DRY_RUN" = 1 ] && echo x)" ]; then
  run_json floor-measure 90 "${TORCH_PY:-python3}" "$ROOT/bench/gpu_train_floor.py" measure
fi
if [ -n "$FLOOR_PY" ]; then
  for b in $BATCHES; do
    images=60000
    [ "$LIMIT" = 0 ] || images=$LIMIT
    run_json "floor-model-b$b" 30 "$FLOOR_PY" "$ROOT/bench/gpu_train_floor.py" model \
      --preset mnist-digit-parity --batch "$b" --images "$images"
  done
fi

# ---------------------------------------------------------------- mnist-digit-parity
first_batch=$(echo "$BATCHES" | awk '{print $1}')
compile_batches=()
for b in $BATCHES; do
  e=$(epochs_for "$b")
  ee=$e
  [ "$ee" -le "$EAGER_EPOCHS" ] || ee=$EAGER_EPOCHS
  ours "ours-fp32-b$b" "$CAP_OURS" --preset mnist-digit-parity --data "$DATA_DIR" --batch-size "$b" \
    --epochs "$e" --precision fp32 --target "$TARGET"
  for m in $MODES; do
    case $m in
      eager) torch_run "torch-eager-fp32-b$b" "$CAP_EAGER" eager "$b" fp32 "$ee" ;;
      graphs) torch_run "torch-graphs-fp32-b$b" "$CAP_GRAPHS" graphs "$b" fp32 "$e" ;;
      compile) compile_batches+=("$b") ;;  # after the cheap runs: it spends most of its time compiling
      *) say "unknown mode $m (eager, graphs, compile)" ;;
    esac
  done
  if [ "$b" = "$first_batch" ]; then
    # Ours with the training step's CUDA graphs off, when the library has that switch: what
    # the graphs are worth.
    if echo "$CAPS" | grep -q '"cuda_graphs_option": *true'; then
      ours "ours-nographs-fp32-b$b" "$CAP_OURS" --preset mnist-digit-parity --data "$DATA_DIR" \
        --batch-size "$b" --epochs "$e" --precision fp32 --target "$TARGET" --cuda-graphs off
    fi
    for p in $PRECISIONS; do
      [ "$p" = fp32 ] || ours "ours-$p-b$b" "$CAP_OURS" --preset mnist-digit-parity --data "$DATA_DIR" \
        --batch-size "$b" --epochs "$e" --precision "$p" --target "$TARGET"
    done
    for p in $TORCH_PRECISIONS; do
      [ "$p" = fp32 ] || torch_run "torch-graphs-$p-b$b" "$CAP_GRAPHS" graphs "$b" "$p" "$e"
    done
  fi
done
first_compile=1
# The other presets at batch 128, each on its default data (or synthetic data where that is
# missing), as speed rows.
other_presets() {
  local preset data
  for preset in fashion-type-brightness mnist-digit-colour-residual cifar-object-colour \
                synthetic-cls-reg two-input-cls-reg; do
    case $preset in
      fashion-type-brightness|mnist-digit-colour-residual) data=$DATA_DIR ;;
      cifar-object-colour) data=$ROOT/data/cifar-10; [ -d "$data" ] || data=synthetic:rgb ;;
      synthetic-cls-reg) data=synthetic:rgb ;;
      two-input-cls-reg) data=synthetic:two-input ;;
    esac
    ours "other-$preset" "$CAP_OTHER" --preset "$preset" --data "$data" --batch-size 128 \
      --epochs "$OTHER_EPOCHS" --target 0
  done
}

for b in "${compile_batches[@]}"; do
  torch_run "torch-compile-fp32-b$b" "$CAP_COMPILE" compile "$b" fp32 "$(epochs_for "$b")"
  if [ "$first_compile" = 1 ] && [ "$OTHER_PRESETS" = 1 ]; then
    first_compile=0
    # Between the compile runs: the second compile is the first thing to drop when time is short.
    other_presets
  fi
done
if [ "$first_compile" = 1 ] && [ "$OTHER_PRESETS" = 1 ]; then  # MODES without compile
  other_presets
fi

if [ "$DRY_RUN" = 1 ]; then
  say "dry run: the report would go to $(dirname "$RESULTS_DIR")/$STEM.md"
  exit 0
fi

# ---------------------------------------------------------------- the report
NVCC_VERSION=$( (nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version 2>/dev/null) |
               grep -o 'release [0-9.]*' | head -n1 || true)
export RAW REPORT DATE_UTC COMMIT DIRTY GPU_NOTE DRIVER DEVICE TARGET BATCHES LIMIT DATA_NOTE \
       BUILD_NOTE CAPS NVCC_VERSION REPORT_BUDGET START_EPOCH COMPILE_MODE
REPORT_PY=${FLOOR_PY:-${TORCH_PY:-python3}}
"$REPORT_PY" - <<'PY' || { echo "gpu_train_report: could not write the report (raw logs in $RAW)" >&2; exit 1; }
import csv, json, math, os, statistics, time

env = os.environ
raw = env["RAW"]
target = float(env["TARGET"])
batches = [int(b) for b in env["BATCHES"].split()]
runs = []
with open(os.path.join(raw, "runs.tsv")) as f:
    for row in csv.reader(f, delimiter="\t"):
        if row:
            runs.append({"name": row[0], "rc": row[1], "secs": row[2], "cmd": row[3] if len(row) > 3 else ""})


def records(name):
    path = os.path.join(raw, name + ".jsonl")
    out = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def log_tail(name, n=1):
    path = os.path.join(raw, name + ".log")
    if not os.path.exists(path):
        return ""
    lines = [l.strip() for l in open(path, errors="replace") if l.strip()]
    return " / ".join(lines[-n:])[:300]


def run_info(name):
    """Figures of one run, from its epoch records (a run cut short still has them)."""
    recs = records(name)
    epochs = [r for r in recs if r.get("record") == "epoch"]
    summary = next((r for r in recs if r.get("record") == "summary"), None)
    error = next((r for r in recs if r.get("record") == "error"), None)
    meta = next((r for r in runs if r["name"] == name), None)
    info = {"name": name, "ran": meta is not None, "rc": meta["rc"] if meta else "not run",
            "epochs": epochs, "summary": summary, "error": error}
    secs = [e["epoch_s"] for e in epochs]
    info["first"] = secs[0] if secs else None
    info["steady"] = statistics.median(secs[1:]) if len(secs) > 1 else None
    info["steady_min"] = min(secs[1:]) if len(secs) > 1 else None
    info["images"] = epochs[0]["train_images"] if epochs else None
    info["ttt"] = info["ttt_epoch"] = None
    task = (summary or {}).get("target_task") or "digit"
    for e in epochs:
        acc = (e.get("test_accuracy") or {}).get(task)
        if acc is not None and acc >= target:
            info["ttt"], info["ttt_epoch"] = e["elapsed_s"], e["epoch"]
            break
    last = epochs[-1] if epochs else {}
    info["acc"] = last.get("test_accuracy") or {}
    info["metrics"] = last.get("test_metrics") or {}
    info["setup"] = (summary or {}).get("setup_s")
    info["graphed"] = last.get("graphed_steps")
    return info


def fmt(v, spec=".3g", none="—"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return format(v, spec)


def status(info):
    if info["error"]:
        return "failed: " + str(info["error"].get("error", ""))[:200]
    rc = info["rc"]
    if rc == "not run" or rc == "budget":
        return "not run (time budget)"
    if rc == "notorch":
        return "not run (no torch)"
    if rc in ("124", "137"):
        return f"cut at the time cap after {len(info['epochs'])} epochs"
    if rc != "0":
        return f"exit {rc}: {log_tail(info['name'])}"
    return ""


floor_measure = (records("floor-measure") or [None])[0]
out = []
w = out.append
label = {"ours": "**polytask**", "ours-nographs": "polytask, CUDA graphs off", "torch-eager": "PyTorch eager", "torch-graphs": "PyTorch CUDA graphs",
         "torch-compile": f"torch.compile ({env.get('COMPILE_MODE')})"}
smoke = env["DEVICE"] != "cuda"
w(f"# End-to-end GPU training: polytask vs PyTorch{' — CPU SMOKE TEST, NOT A BENCHMARK' if smoke else ''}")
w("")
if smoke:
    w(f"> DEVICE={env['DEVICE']}: the pipeline ran on the CPU on {env['LIMIT']} examples per split "
      "to check the programs, the JSON and this report. None of these figures say anything about "
      "the GPU.")
    w("")
w(f"- device: {env.get('GPU_NOTE') or '?'}; driver {env.get('DRIVER') or '?'}; nvcc {env.get('NVCC_VERSION') or '?'}")
w(f"- date: {env['DATE_UTC']}; commit `{env['COMMIT']}` ({env['DIRTY']})")
torch_v = None
for r in runs:
    for rec in records(r["name"]):
        torch_v = torch_v or rec.get("torch_version") or rec.get("torch")
w(f"- PyTorch {torch_v or '?'}; polytask build: {env.get('BUILD_NOTE') or '?'}; capabilities {env.get('CAPS')}")
w(f"- data: {env['DATA_NOTE']}" + (f" (first {env['LIMIT']} of each split)" if env["LIMIT"] != "0" else
                                   " (60,000 training images per epoch, no validation split; 10,000 test)"))
w(f"- total {int(time.time()) - int(env['START_EPOCH'])} s of a {env['REPORT_BUDGET']} s budget")
w("")
w("s/epoch: median of the epochs after the first (the first, with warm-up, CUDA-graph capture "
  "or compilation, is its own column); each epoch is timed by the program itself and ends with "
  "a read back that waits for the GPU. Time to target: wall time from just before the data "
  "upload to the end of the first test evaluation at or above the target digit accuracy; it "
  "includes the upload, warm-up, compile/capture and every evaluation. Both sides keep the "
  "data on the GPU and gather each batch there.")
w("")

main = {}
for b in batches:
    w(f"## mnist-digit-parity, batch {b}")
    w("")
    w("| run | precision | s/epoch | images/s | ours ÷ this (time) | ours is × faster | epoch 1 s "
      f"| time to {target:.0%} (epoch) | test digit acc | parity acc | epochs | note |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = [r["name"] for r in runs if r["name"].endswith(f"-b{b}") and
             (r["name"].startswith("ours-") or r["name"].startswith("torch-"))]
    infos = [run_info(n) for n in names]
    for i in infos:
        kind = i["name"].rsplit("-", 2)[0]
        precision = i["name"].rsplit("-", 2)[1]
        main[(kind, precision, b)] = i
        ratio = speed = None
        # PyTorch against ours in the same precision (TF32 against TF32...).
        ref = None if i["name"].startswith("ours-") else \
            next((j for j in infos if j["name"] == f"ours-{precision}-b{b}"), None)
        if ref and ref["steady"] and i["steady"]:
            ratio, speed = ref["steady"] / i["steady"], i["steady"] / ref["steady"]
        ips = i["images"] / i["steady"] if i["steady"] and i["images"] else None
        ttt = f"{fmt(i['ttt'])} s ({i['ttt_epoch']})" if i["ttt"] is not None else \
            (f"not in {len(i['epochs'])} epochs" if i["epochs"] else "—")
        note = status(i)
        if i["setup"] is not None and i["name"].startswith("torch-graphs"):
            note = (note + "; " if note else "") + f"capture {fmt(i['setup'])} s before epoch 1"
        if i.get("graphed") is not None and i["name"].startswith("ours-") and not smoke:
            note = (note + "; " if note else "") + f"{i['graphed']} graphed steps in the last epoch"
        w(f"| {label.get(kind, kind)} | {precision} | {fmt(i['steady'], '.4g')} | {fmt(ips, ',.0f')} "
          f"| {fmt(ratio, '.2f')} | {fmt(speed, '.1f')} | {fmt(i['first'], '.3g')} | {ttt} "
          f"| {fmt(i['acc'].get('digit'), '.4f')} | {fmt(i['acc'].get('parity'), '.4f')} "
          f"| {len(i['epochs'])} | {note} |")
    w("")


def verdict(ok):
    return "—" if ok is None else ("**met**" if ok else "**not met**")


first_b = batches[0]
o = main.get(("ours", "fp32", first_b))
w(f"## Targets from the issue (batch {first_b}, FP32)")
w("")
w("| target | measured | verdict |")
w("|---|---|---|")
s = o["steady"] if o else None
w(f"| ≤ 0.1 s/epoch (60k images) | {fmt(s, '.4g')} s | {verdict(None if s is None else s <= 0.1)} |")
for kind, need, what in (("torch-eager", 10, "PyTorch eager"), ("torch-graphs", 2, "PyTorch CUDA graphs"),
                         ("torch-compile", 2, "torch.compile")):
    t = main.get((kind, "fp32", first_b))
    sp = t["steady"] / s if t and t["steady"] and s else None
    shown = (f"{sp:.2f}× ({t['steady']:.4g} s vs {s:.4g} s)" if sp is not None else
             "not measured" + (f" ({status(t)})" if t and status(t) else ""))
    w(f"| ≥ {need}× {what} (s/epoch) | {shown} | {verdict(None if sp is None else sp >= need)} |")
ttt = o["ttt"] if o else None
reached = o is not None and o["epochs"]
w(f"| time to {target:.0%} test digit accuracy ≤ 1 s | "
  f"{fmt(ttt, '.3g') + ' s (epoch ' + str(o['ttt_epoch']) + ')' if ttt is not None else ('not reached in ' + str(len(o['epochs'])) + ' epochs' if reached else '—')} "
  f"| {verdict(None if not reached else (ttt is not None and ttt <= 1.0))} |")
w("")

# The floor.
w("## The floor of an epoch")
w("")
if floor_measure:
    w(f"Measured in this run ({floor_measure.get('method', '')}): FP32 (non-tensor) "
      f"{fmt(floor_measure.get('fp32_tflops'), '.1f')} TFLOP/s, TF32 {fmt(floor_measure.get('tf32_tflops'), '.0f')} "
      f"TFLOP/s, BF16 {fmt(floor_measure.get('bf16_tflops'), '.0f')} TFLOP/s; device-to-device copy "
      f"{fmt(floor_measure.get('copy_tbps'), '.2f')} TB/s.")
else:
    w("GPU rates not measured in this run" + (" (CPU smoke test)." if smoke else " (see floor-measure.log)."))
w("")
w("FLOPs: conv/dense multiply-adds × 2, forward + backward-filter + backward-data (conv1 runs no "
  "backward-data). Bytes: float32 activations written and read once forward, their gradients "
  "written and read once backward, the input read twice; per step 9 accesses per parameter "
  "(forward read, gradient write, Adam's p, g, m, v read and p, m, v write). A batch-128 "
  "step's activations (~19 MB) fit in the H100's 50 MB L2, so the memory term is a guide; the "
  "compute term is the hard floor. bench/gpu_train_floor.py.")
w("")
w("| batch | GFLOP/epoch | GB/epoch | compute at FP32 | memory | floor (FP32) | ours s/epoch | ours ÷ floor | floor at TF32 / BF16 rate |")
w("|---|---|---|---|---|---|---|---|---|")
for b in batches:
    m = (records(f"floor-model-b{b}") or [None])[0]
    if not m:
        w(f"| {b} | — | — | — | — | — | — | — | — |")
        continue
    fl, by = m["flops_per_epoch"], m["bytes_per_epoch"]
    comp = mem = floor = tf = bf = None
    if floor_measure:
        comp = fl / (floor_measure["fp32_tflops"] * 1e12)
        mem = by / (floor_measure["copy_tbps"] * 1e12)
        floor = max(comp, mem)
        tf = max(fl / (floor_measure["tf32_tflops"] * 1e12), mem)
        bf = max(fl / (floor_measure["bf16_tflops"] * 1e12), mem / 2)
    ob = main.get(("ours", "fp32", b))
    ours_s = ob["steady"] if ob else None
    gap = ours_s / floor if ours_s and floor else None
    ms = lambda v: fmt(v * 1e3 if v is not None else None, '.1f') + (" ms" if v is not None else "")
    w(f"| {b} | {fl / 1e9:.1f} | {by / 1e9:.1f} | {ms(comp)} | {ms(mem)} | {ms(floor)} "
      f"| {fmt(ours_s, '.4g')} | {fmt(gap, '.1f')}× | {ms(tf)} / {ms(bf)} |")
w("")
w("(BF16 floor: activations at 2 bytes. Launch overhead is not in the floor: a training step is "
  "tens of kernels, so an epoch at batch 128 (469 steps) is over 10,000 launches — tens of ms at "
  "a few µs each unless the step runs as a CUDA graph.)")
w("")

others = [r["name"] for r in runs if r["name"].startswith("other-")]
if others:
    w("## Other presets (speed row: batch 128, FP32)")
    w("")
    w("| preset | data | epochs | epoch 1 s | s/epoch (after the first) | images/s | final test metrics | note |")
    w("|---|---|---|---|---|---|---|---|")
    for n in others:
        i = run_info(n)
        data = (i["epochs"][0]["data"] if i["epochs"] else "")
        data = "Fashion-MNIST" if "fashion" in data else data
        ips = i["images"] / i["steady"] if i["steady"] and i["images"] else None
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in {**i["acc"], **i["metrics"]}.items())
        w(f"| {n[len('other-'):]} | {data} | {len(i['epochs'])} | {fmt(i['first'], '.3g')} "
          f"| {fmt(i['steady'], '.4g')} | {fmt(ips, ',.0f')} | {metrics or '—'} | {status(i)} |")
    w("")

w("## Runs")
w("")
w("| run | exit | s | command |")
w("|---|---|---|---|")
for r in runs:
    cmd = r["cmd"].replace("|", "\\|").strip()
    w(f"| {r['name']} | {r['rc']} | {r['secs']} | `{cmd}` |")
w("")
shown_raw = os.path.relpath(raw) if not os.path.relpath(raw).startswith("..") else raw
w(f"Raw JSON lines and logs: {shown_raw}/ (one .jsonl and .log per run; build.log).")
open(env["REPORT"], "w").write("\n".join(out) + "\n")
PY
cp "$REPORT" "$RAW/report.md"
say "report: $REPORT"

# To $OUT (the device tool brings back at most 8 files): the report, every run's JSON lines in
# one file, and the raw folder as an archive.
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$REPORT" "$OUT/"
  for f in "$RAW"/*.jsonl; do
    [ -e "$f" ] || continue
    sed "s/^/$(basename "$f" .jsonl)\t/" "$f"
  done >"$OUT/gpu-train-raw.tsv"
  tar -czf "$OUT/$STEM-raw.tar.gz" -C "$(dirname "$RAW")" "$(basename "$RAW")" 2>/dev/null || true
fi
echo
cat "$REPORT"
