#!/usr/bin/env bash
# Data-parallel training on this machine's CPU: one process against `mpirun -np N` (N = 2 and,
# where the machine has more cores, its core count), the same global batch, real data. Prints a
# Markdown table: each configuration's median steady epoch (epochs 2.. of each run, over
# REPEATS runs), its speed-up against one process on every core, and the seconds each epoch
# spent in collectives (waiting for the other ranks included).
#
# Usage: bench/dp_cpu_scaling.sh [PRESET] > bench/results/data-parallel-cpu-<date>.md
#   PRESET (default fashion-type-brightness); env: LIMIT (default 12000 rows), EPOCHS (3),
#   REPEATS (3), BATCH (128), DATA (the preset's default), POLYTASK (the binary).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/report_lib.sh"
PRESET=${1:-fashion-type-brightness}
LIMIT=${LIMIT:-12000}
EPOCHS=${EPOCHS:-3}
REPEATS=${REPEATS:-3}
BATCH=${BATCH:-128}
report_find_polytask "$0"
report_runs_dir
report_commit
command -v mpirun >/dev/null || { echo "$0: no mpirun (install openmpi-bin)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cores=$(nproc)
data_args=()
[[ -n "${DATA:-}" ]] && data_args=(--data "$DATA")
args=(train --preset "$PRESET" "${data_args[@]}" --limit "$LIMIT" --epochs "$EPOCHS"
      --batch-size "$BATCH" --device cpu --no-tensorboard --seed 1)

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# field KEY of every epoch line after the first, of every run directory given
steady() {
  local key=$1; shift
  for run in "$@"; do
    tail -n +2 "$run/metrics.jsonl" | sed -n "s/.*\"$key\": \([0-9.e+-]*\).*/\1/p"
  done
}

# configuration label, ranks, threads per rank
configs=("1 process, $cores threads|1|$cores" "1 process, 1 thread|1|1" "mpirun -np 2, 1 thread each|2|1")
((cores > 2)) && configs+=("mpirun -np $cores, 1 thread each|$cores|1")

declare -A seconds comm
for config in "${configs[@]}"; do
  IFS='|' read -r label ranks threads <<<"$config"
  runs=()
  for r in $(seq "$REPEATS"); do
    out="$RUNS/$ranks-$threads-$r"
    if ((ranks == 1)); then
      "$POLYTASK" "${args[@]}" --threads "$threads" --out "$out" >/dev/null
    else
      mpirun --oversubscribe -np "$ranks" "$POLYTASK" "${args[@]}" --threads "$threads" \
        --out "$out" >/dev/null
    fi
    runs+=("$out")
  done
  seconds[$label]=$(steady seconds "${runs[@]}" | median)
  comm[$label]=$(steady communication_seconds "${runs[@]}" | median)
done

base=${seconds["1 process, $cores threads"]}
params=$("$POLYTASK" "${args[@]}" --epochs 0 --out "$RUNS/count" | sed -n 's/.*(\([0-9]*\) parameters).*/\1/p')
steps=$(( (LIMIT - LIMIT / 10 + BATCH - 1) / BATCH ))
echo "# Data-parallel training on the CPU: $PRESET"
echo
echo "$(date -u +%F), commit $COMMIT, $(lscpu | sed -n 's/^Model name: *//p') ($cores cores),"
echo "$(mpirun --version | head -1). $LIMIT rows of the preset's data (10% validation), global"
echo "batch $BATCH, $EPOCHS epochs, $REPEATS runs per row: the median of epochs 2..$EPOCHS."
echo
echo "Per step every rank sums $params gradients: $((params * 4)) bytes (float32), plus the"
echo "tasks' losses and the fan-out's Gram matrix (a few doubles); $steps steps per epoch."
echo
echo "| configuration | epoch (s) | speed-up vs 1 process on $cores threads | in collectives (s) |"
echo "|---|---|---|---|"
for config in "${configs[@]}"; do
  IFS='|' read -r label ranks threads <<<"$config"
  s=${seconds[$label]}
  c="—"
  ((ranks > 1)) && c=$(printf '%.2f' "${comm[$label]}")
  printf '| %s | %.2f | %.2fx | %s |\n' "$label" "$s" "$(echo "$base / $s" | bc -l)" "$c"
done
