#!/usr/bin/env bash
# Trains one preset with every gradient-balancing strategy and each task alone, once per seed
# (same data and epochs), then writes a Markdown report: per-task test metric and Δ% against the
# single-task baselines as mean ± 95 % confidence interval over the seeds, LibMTL's Δp, a
# verdict per strategy against static (better, worse, or not distinguishable at these seeds),
# seconds per training step relative to static, the final weights and the mean gradient
# cosine; then a cost table and a generated "Reading" section (facts only). The statistics and
# the Markdown are bench/mtl_stats.py's (`python3 bench/mtl_stats.py --self-test` checks them).
#
#   bench/mtl_report.sh PRESET                     # -> bench/results/mtl-balancers-PRESET.md
#   SEEDS="0 1" EPOCHS=1 LIMIT=600 BALANCERS="static mgda rlw" PARALLEL=2 bench/mtl_report.sh multi-fashion
#   bench/mtl_report_all.sh                        # the four presets with the same settings
#     POLYTASK  the binary (default: build/cli/polytask, else build-*/cli/polytask)
#     DATA      the data source (default: the preset's default_data; multi-fashion's is
#               multi:/usr/share/datasets/fashion-mnist, the others' /usr/share/datasets/fashion-mnist)
#     SEEDS     the seeds ("0 1 2 3 4"); every run, each strategy and each baseline, once per seed
#     EPOCHS    epochs per run (3); LIMIT: examples per split (30000; 0 = all)
#     BALANCERS the strategies (all fifteen: static dynamic uncertainty gradnorm dwa pcgrad mgda
#               upgrad famo cagrad nash-mtl imtl aligned-mtl rlw static-from-norms)
#     EXTRA     more rows, "LABEL|TRAIN ARGS" separated by ";", each run once per seed too, e.g.
#               EXTRA="uncertainty, lr 0.01|--balancer uncertainty --balancer-lr 0.01"
#     THREADS   OMP_NUM_THREADS for every run (1: on a shared 2-core machine a second thread
#               that loses its core slows a step down many times, which would make the
#               seconds meaningless)
#     PARALLEL  runs at a time (1); with THREADS=1, PARALLEL=2 fills a 2-core machine
#     DEVICE    cpu (default) or cuda: where every run trains (`--device`); the cost table labels
#               its columns with the device
#     GPU_RUNS  the RUNS directory of a DEVICE=cuda report of the same preset and settings: the
#               cost table's GPU column shows its seconds per step (otherwise "not measured")
#     OUT       the Markdown file
#     RUNS      where the run directories go (RUNS/NAME-seedS, its console output in
#               NAME-seedS.log, its arguments in NAME-seedS.args). Default: a temporary directory,
#               removed afterwards. A given RUNS is kept, and runs already finished there (their
#               directory holds test_metrics.json) are reused, so an interrupted report resumes
#               where it stopped; a finished run whose arguments differ (other EPOCHS, LIMIT,
#               EXTRA...) stops the report before anything trains. Reuse does not check the
#               binary: use a fresh RUNS after rebuilding.
# A run that fails stops the report (no new runs start; the running ones finish) and shows the
# end of its log; no Markdown is written.
#
# Single-task baselines: the same preset with every other task's loss weight set to 0 (static
# weights), so only that task's gradient trains the trunk. The other heads still run forward
# (a little extra time) but get no gradient.
#
# Δ_t = ±(M_t − M_t,single) / M_t,single · 100 per seed against that seed's baseline, "+" for
# higher-is-better metrics (accuracy) and "−" for lower-is-better ones (MAE), so a positive Δ
# always means "better than alone"; Δp = the mean of Δ_t over the tasks (LibMTL's Δp). Verdict:
# the paired per-seed difference Δp(strategy) − Δp(static), "better"/"worse" when its 95 % t
# interval lies above/below 0.
# Seconds per step: epoch seconds / ceil(training rows / batch); the epoch seconds include the
# validation pass (metrics.jsonl has no train-only time).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRESET="${1:?usage: bench/mtl_report.sh PRESET (e.g. fashion-type-brightness)}"
ALL_BALANCERS="static dynamic uncertainty gradnorm dwa pcgrad mgda upgrad famo cagrad nash-mtl imtl aligned-mtl rlw static-from-norms"
SEEDS="${SEEDS:-0 1 2 3 4}"
EPOCHS="${EPOCHS:-3}"
LIMIT="${LIMIT:-30000}"
THREADS="${THREADS:-1}"
PARALLEL="${PARALLEL:-1}"
DEVICE="${DEVICE:-cpu}"
BALANCERS="${BALANCERS:-$ALL_BALANCERS}"
EXTRA="${EXTRA:-}"
GPU_RUNS="${GPU_RUNS:-}"
OUT="${OUT:-$ROOT/bench/results/mtl-balancers-$PRESET.md}"
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || { echo "mtl_report.sh: PARALLEL must be a positive integer" >&2; exit 1; }
[[ -n "${SEEDS// /}" ]] || { echo "mtl_report.sh: SEEDS is empty" >&2; exit 1; }
[[ "$DEVICE" == cpu || "$DEVICE" == cuda ]] || { echo "mtl_report.sh: DEVICE must be cpu or cuda" >&2; exit 1; }
[[ -z "$GPU_RUNS" || -d "$GPU_RUNS" ]] || { echo "mtl_report.sh: GPU_RUNS $GPU_RUNS is no directory" >&2; exit 1; }
# shellcheck source=bench/report_lib.sh
source "$ROOT/bench/report_lib.sh"
report_find_polytask mtl_report.sh
report_runs_dir
mkdir -p "$(dirname "$OUT")"
report_preset_tasks mtl_report.sh "$PRESET"
DATA_ARGS=()
[[ -n "${DATA:-}" ]] && DATA_ARGS=(--data "$DATA")
# The commit the runs start from (others may commit while a long report runs).
report_commit

# The rows: "KIND|LABEL|RUN NAME|TRAIN ARGS"; each runs once per seed into RUNS/NAME-seedS.
ROWS=()
for task in "${TASKS[@]}"; do
  args=""
  for other in "${TASKS[@]}"; do [[ "$other" == "$task" ]] || args+=" --loss-weight $other=0"; done
  ROWS+=("alone|$task alone|alone-$task|$args")
done
for balancer in $BALANCERS; do ROWS+=("strategy|$balancer|$balancer|--balancer $balancer"); done
if [[ -n "$EXTRA" ]]; then
  IFS=';' read -r -a extras <<< "$EXTRA"
  for extra in "${extras[@]}"; do
    label="${extra%%|*}"
    [[ "$extra" == *"|"* && -n "$label" ]] || { echo "mtl_report.sh: EXTRA entry '$extra' is not LABEL|ARGS" >&2; exit 1; }
    ROWS+=("extra|$label|extra-$(echo "$label" | tr -c 'A-Za-z0-9.=\n-' '_')|${extra#*|}")
  done
fi
names="$(printf '%s\n' "${ROWS[@]}" | cut -d'|' -f3 | sort | uniq -d)"
[[ -z "$names" ]] || { echo "mtl_report.sh: two rows would share the run directory $names" >&2; exit 1; }

# Every (row, seed): its arguments, and whether RUNS already holds it finished.
run_args() {  # run_args SEED ARGS...: prints the train arguments, one a line (--out aside)
  local seed="$1"; shift
  printf '%s\n' --preset "$PRESET" ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} --epochs "$EPOCHS" --limit "$LIMIT" \
    --seed "$seed" --device "$DEVICE" --no-tensorboard "$@"
}
# Seed by seed: the runs a per-seed comparison pairs train close in time (the load of a shared
# machine drifts), and an interrupted report leaves whole seeds behind. Each seed starts at
# another row (the order rotates by rows/seeds), so that no strategy always trains first or
# last in its block, when the load may differ systematically.
TODO=()  # "RUN NAME|SEED|ARGS"
REUSED=0
rm -f "$RUNS"/*.failed
read -r -a seed_list <<< "$SEEDS"
for k in "${!seed_list[@]}"; do
  seed="${seed_list[$k]}"
  shift_by=$(( k * ${#ROWS[@]} / ${#seed_list[@]} ))
  for j in "${!ROWS[@]}"; do
    row="${ROWS[$(( (j + shift_by) % ${#ROWS[@]} ))]}"
    IFS='|' read -r _ _ name args <<< "$row"
    read -r -a argv <<< "$args"
    dir="$RUNS/$name-seed$seed"
    if [[ -f "$dir/test_metrics.json" ]]; then
      if [[ "$(cat "$dir.args" 2>/dev/null)" != "$(run_args "$seed" ${argv[@]+"${argv[@]}"})" ]]; then
        echo "mtl_report.sh: $dir is a finished run with other arguments than this report's" \
          "(see $dir.args); remove it or use another RUNS" >&2
        exit 1
      fi
      REUSED=$((REUSED + 1))
    else
      TODO+=("$name|$seed|$args")
    fi
  done
done

train() {  # train NAME SEED ARGS...: one run into RUNS/NAME-seedSEED; on failure, NAME-seedSEED.failed
  local name="$1" seed="$2" dir; shift 2
  dir="$RUNS/$name-seed$seed"
  rm -rf "$dir"
  run_args "$seed" "$@" > "$dir.args"
  local argv child status=0
  mapfile -t argv < "$dir.args"
  # In the background, so that this subshell can pass an interruption on to the run.
  OMP_NUM_THREADS="$THREADS" "$POLYTASK" train "${argv[@]}" --out "$dir" > "$dir.log" 2>&1 &
  child=$!
  trap 'kill "$child" 2>/dev/null; exit 143' TERM
  wait "$child" || status=$?
  if (( status != 0 )); then
    { echo "mtl_report.sh: $PRESET: $name, seed $seed failed; the end of $dir.log:"
      tail -n 15 "$dir.log" | sed 's/^/    /'; } >&2
    touch "$dir.failed"
    return 1
  fi
}
failed() { compgen -G "$RUNS/*.failed" > /dev/null; }

# The processor the runs train on, for the cost table (the run logs say only "cpu" or "cuda").
if [[ "$DEVICE" == cuda ]]; then
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 > "$RUNS/device.txt" || true
else
  sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1 > "$RUNS/device.txt" || true
fi

trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s)
echo "mtl_report.sh: $PRESET: ${#TODO[@]} runs to train, $REUSED reused, $PARALLEL at a time" >&2
for i in "${!TODO[@]}"; do
  while (( $(jobs -rp | wc -l) >= PARALLEL )); do wait -n || true; done
  failed && break
  IFS='|' read -r name seed args <<< "${TODO[$i]}"
  read -r -a argv <<< "$args"
  echo "mtl_report.sh: $PRESET: [$((i + 1))/${#TODO[@]}] $name, seed $seed" >&2
  train "$name" "$seed" ${argv[@]+"${argv[@]}"} &
done
wait
if failed; then
  echo "mtl_report.sh: $PRESET: $(compgen -G "$RUNS/*.failed" | wc -l) run(s) failed (above); no report written" >&2
  exit 1
fi
ELAPSED=$(( $(date +%s) - START ))
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

COMMAND="SEEDS=\"$SEEDS\" EPOCHS=$EPOCHS LIMIT=$LIMIT THREADS=$THREADS PARALLEL=$PARALLEL"
[[ "$BALANCERS" == "$ALL_BALANCERS" ]] || COMMAND+=" BALANCERS=\"$BALANCERS\""
[[ -z "${DATA:-}" ]] || COMMAND+=" DATA=$DATA"
[[ "$DEVICE" == cpu ]] || COMMAND+=" DEVICE=$DEVICE"
[[ -z "$EXTRA" ]] || COMMAND+=" EXTRA=\"$EXTRA\""
COMMAND+=" bench/mtl_report.sh $PRESET"
STATS_ARGS=()
for row in "${ROWS[@]}"; do
  IFS='|' read -r kind label name _ <<< "$row"
  [[ "$kind" == alone ]] || STATS_ARGS+=(--row "$kind|$label|$name")
done
[[ -z "$GPU_RUNS" ]] || STATS_ARGS+=(--gpu-runs "$GPU_RUNS")
python3 "$ROOT/bench/mtl_stats.py" report --runs "$RUNS" --out "$OUT" --preset "$PRESET" \
  --tasks "${TASKS[*]}" --seeds "$SEEDS" "${STATS_ARGS[@]}" \
  --meta "date=${REPORT_DATE:-$(date +%Y-%m-%d)}" --meta "commit=$COMMIT" \
  --meta "binary=$POLYTASK" --meta "binary_time=$(date -u -r "$POLYTASK" '+%Y-%m-%d %H:%M UTC')" \
  --meta "threads=$THREADS" --meta "parallel=$PARALLEL" --meta "limit=$LIMIT" \
  --meta "command=$COMMAND" --meta "elapsed=$ELAPSED" --meta "trained=${#TODO[@]}" \
  --meta "reused=$REUSED" --meta "load_before=$LOAD_BEFORE" --meta "load_after=$LOAD_AFTER"
echo "mtl_report.sh: wrote $OUT" >&2
