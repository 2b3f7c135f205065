#!/usr/bin/env bash
# Compares how the tasks share the network (models/sharing.h) on one preset, over several seeds:
# each task alone, hard sharing branching at several depths, one trunk per task, soft sharing at
# two strengths, cross-stitch units and MMoE. Writes a Markdown table: per-task test metric as
# mean ± standard deviation over the seeds, LibMTL's Δp against the single-task baselines,
# parameters, seconds per epoch, and whether each architecture's Δp differs from full hard
# sharing by more than the seed noise.
#
#   bench/architecture_report.sh PRESET      # -> bench/results/architectures-PRESET.md
#   SEEDS="0 1 2" EPOCHS=3 LIMIT=20000 BRANCHES="4 8" bench/architecture_report.sh fashion-three-tasks
#     POLYTASK  the binary (default: build/cli/polytask, else build-*/cli/polytask)
#     DATA      the data source (default: the preset's default_data)
#     SEEDS     seeds (0 1 2); EPOCHS per run (3); LIMIT examples per split (20000; 0 = all)
#     BRANCHES  hard-sharing branch points to try besides the whole trunk (trunk layer counts)
#     SOFT      soft-sharing strengths (1e-3 1e-2); EXPERTS for MMoE (4)
#     ARCHS     which rows to run (default: all of alone hard separate soft cross_stitch mmoe)
#     THREADS   OMP_NUM_THREADS per run (1, as in mtl_report.sh: seconds stay comparable on a
#               shared 2-core machine); JOBS runs at a time (2)
#     OUT       the Markdown file; RUNS where the run directories go (a temporary directory,
#               removed afterwards, unless given; a given RUNS keeps finished runs, so an
#               interrupted report continues where it stopped)
#
# Δ_t = ±(M_t − M_t,alone)/M_t,alone·100 ("+" for accuracy, "−" for MAE), Δp = mean over tasks,
# per seed against the single-task baselines' mean over the seeds. Single-task baselines: hard
# sharing with every other task's loss weight 0.
# Noise: an architecture's Δp "differs" from hard sharing when the 95 % Welch t interval of the
# difference of the two means excludes 0 (n = number of seeds each).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRESET="${1:?usage: bench/architecture_report.sh PRESET (e.g. fashion-three-tasks)}"
SEEDS="${SEEDS:-0 1 2}"
EPOCHS="${EPOCHS:-3}"
LIMIT="${LIMIT:-20000}"
BRANCHES="${BRANCHES:-}"
SOFT="${SOFT:-1e-3 1e-2}"
EXPERTS="${EXPERTS:-4}"
ARCHS="${ARCHS:-alone hard separate soft cross_stitch mmoe}"
THREADS="${THREADS:-1}"
JOBS="${JOBS:-2}"
OUT="${OUT:-$ROOT/bench/results/architectures-$PRESET.md}"
# shellcheck source=bench/report_lib.sh
source "$ROOT/bench/report_lib.sh"
report_find_polytask architecture_report.sh
report_runs_dir
mkdir -p "$(dirname "$OUT")"
report_preset_tasks architecture_report.sh "$PRESET"
DATA_ARGS=()
[[ -n "${DATA:-}" ]] && DATA_ARGS=(--data "$DATA")
report_commit
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s)

# The rows: "ROW LABEL|train arguments", one run per seed each.
ROWS=()
for arch in $ARCHS; do
  case "$arch" in
    alone)
      for task in "${TASKS[@]}"; do
        args=""
        for other in "${TASKS[@]}"; do [[ "$other" == "$task" ]] || args+=" --loss-weight $other=0"; done
        ROWS+=("alone-$task|$args")
      done ;;
    hard)
      ROWS+=("hard, whole trunk|--sharing hard")
      for k in $BRANCHES; do ROWS+=("hard, branch after $k|--sharing hard --branch-after $k"); done ;;
    separate) ROWS+=("separate trunks|--sharing separate") ;;
    soft) for s in $SOFT; do ROWS+=("soft, strength $s|--sharing soft --soft-strength $s"); done ;;
    cross_stitch) ROWS+=("cross-stitch|--sharing cross_stitch") ;;
    mmoe) ROWS+=("MMoE, $EXPERTS experts|--sharing mmoe --experts $EXPERTS") ;;
    *) echo "architecture_report.sh: unknown architecture '$arch'" >&2; exit 1 ;;
  esac
done

run_dir() { echo "$RUNS/$(echo "$1" | tr -c 'A-Za-z0-9.\n-' '_')-seed$2"; }
train() {  # train LABEL SEED ARGS: skipped when that run already finished
  local label="$1" seed="$2" dir; shift 2
  dir="$(run_dir "$label" "$seed")"
  [[ -f "$dir/test_metrics.json" ]] && return 0
  rm -rf "$dir"
  echo "architecture_report.sh: $PRESET: $label, seed $seed" >&2
  # shellcheck disable=SC2068
  OMP_NUM_THREADS="$THREADS" "$POLYTASK" train --preset "$PRESET" ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} \
    --epochs "$EPOCHS" --limit "$LIMIT" --seed "$seed" --device cpu --no-tensorboard "$@" \
    --out "$dir" > "$dir.log" 2>&1 || { echo "architecture_report.sh: $label seed $seed failed:" >&2; tail -3 "$dir.log" >&2; return 1; }
}
for row in "${ROWS[@]}"; do
  label="${row%%|*}"
  read -r -a args <<< "${row#*|}"
  for seed in $SEEDS; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    train "$label" "$seed" ${args[@]+"${args[@]}"} &
  done
done
wait
ELAPSED=$(( $(date +%s) - START ))
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
COMMAND="SEEDS=\"$SEEDS\" EPOCHS=$EPOCHS LIMIT=$LIMIT BRANCHES=\"$BRANCHES\" SOFT=\"$SOFT\" EXPERTS=$EXPERTS JOBS=$JOBS bench/architecture_report.sh $PRESET"
LABELS="$(printf '%s\n' "${ROWS[@]}" | cut -d'|' -f1)"
RUN_DIRS="$(for row in "${ROWS[@]}"; do run_dir "${row%%|*}" X; done)"

python3 - "$RUNS" "$OUT" "$PRESET" "${DATA:-the preset default}" "$EPOCHS" "$LIMIT" "$SEEDS" "$THREADS" \
  "$COMMIT" "$COMMAND" "$ELAPSED" "$LOAD_BEFORE" "$LOAD_AFTER" "$(date +%Y-%m-%d)" "${TASKS[*]}" \
  "$LABELS" "$RUN_DIRS" "$JOBS" <<'PY'
import json, math, os, re, statistics, sys

(runs, out, preset, data, epochs, limit, seeds, threads, commit, command, elapsed, load_before,
 load_after, date, tasks, labels, run_dirs, jobs) = sys.argv[1:]
tasks, seeds = tasks.split(), seeds.split()
labels, run_dirs = labels.splitlines(), run_dirs.splitlines()

# Two-sided 95 % quantiles of Student's t by degrees of freedom (Welch's df rounded down).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}
def t975(df):
    keys = [k for k in sorted(T975) if k <= max(1, math.floor(df))]
    return T975[keys[-1]] if keys else T975[1]

def load(label):
    runs_of = []
    base = run_dirs[labels.index(label)][:-len("X")]
    for seed in seeds:
        d = base + seed
        with open(os.path.join(d, "test_metrics.json")) as f:
            test = json.load(f)
        with open(os.path.join(d, "metrics.jsonl")) as f:
            ep = [json.loads(l) for l in f if l.strip()]
        with open(d + ".log") as f:
            params = int(re.search(r"\((\d+) parameters\)", f.read()).group(1))
        runs_of.append((test, ep, params))
    return runs_of

def metric(test, task):
    for name, sign in (("accuracy", 1), ("mae", -1)):
        if f"{task}_{name}" in test:
            return name, sign, test[f"{task}_{name}"]
    raise SystemExit(f"no test metric for task {task}")

def mean_sd(values):
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else 0.0)

alone = {}
for task in tasks:
    values = [metric(t, task)[2] for t, _, _ in load(f"alone-{task}")]
    alone[task] = statistics.fmean(values)

rows, dps = [], {}
# The baselines as one row: each task's metric from the run that trained it alone; their Δp
# per seed against the seed mean shows the seed noise of the baselines themselves.
alone_labels = [l for l in labels if l.startswith("alone-")]
if alone_labels:
    cells, seed_dp, seconds = ["each task alone (the baselines)"], [0.0] * len(seeds), []
    for task in tasks:
        runs_of = load(f"alone-{task}")
        name, sign, _ = metric(runs_of[0][0], task)
        values = [metric(t, task)[2] for t, _, _ in runs_of]
        m, sd = mean_sd(values)
        cells.append(f"{m:.4f} ± {sd:.4f}")
        for i, v in enumerate(values):
            seed_dp[i] += sign * (v - alone[task]) / alone[task] * 100 / len(tasks)
        seconds += [e["seconds"] for _, ep, _ in runs_of for e in ep]
    m, sd = mean_sd(seed_dp)
    cells += [f"{m:+.2f} ± {sd:.2f}", f"{runs_of[0][2]:,} each", f"{statistics.fmean(seconds):.1f}"]
    rows.append(cells)
for label in labels:
    if label.startswith("alone-"):
        continue
    per_seed = load(label)
    cells, seed_dp = [label], [0.0] * len(per_seed)
    for task in tasks:
        name, sign, _ = metric(per_seed[0][0], task)
        values = [metric(t, task)[2] for t, _, _ in per_seed]
        m, sd = mean_sd(values)
        cells.append(f"{m:.4f} ± {sd:.4f}")
        for i, v in enumerate(values):
            seed_dp[i] += sign * (v - alone[task]) / alone[task] * 100 / len(tasks)
    dps[label] = seed_dp
    m, sd = mean_sd(seed_dp)
    seconds = statistics.fmean(e["seconds"] for _, ep, _ in per_seed for e in ep)
    cells += [f"{m:+.2f} ± {sd:.2f}", f"{per_seed[0][2]:,}", f"{seconds:.1f}"]
    rows.append(cells)

reference = "hard, whole trunk" if "hard, whole trunk" in dps else None
for cells in rows:
    label = cells[0]
    if reference is None or label == reference or label not in dps:
        cells.append("—" if label != reference else "(reference)")
        continue
    a, b = dps[label], dps[reference]
    diff = statistics.fmean(a) - statistics.fmean(b)
    va = statistics.variance(a) / len(a) if len(a) > 1 else 0.0
    vb = statistics.variance(b) / len(b) if len(b) > 1 else 0.0
    se = math.sqrt(va + vb)
    if se == 0:
        cells.append(f"{diff:+.2f} (no spread)")
        continue
    df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0) + (vb ** 2 / (len(b) - 1) if vb else 0) or 1e-300)
    half = t975(df) * se
    verdict = "better" if diff - half > 0 else "worse" if diff + half < 0 else "not distinguishable"
    cells.append(f"{diff:+.2f} ± {half:.2f}: {verdict}")

header = ["architecture"] + [f"{t} {metric(load(labels[0])[0][0], t)[0]}" for t in tasks]
header += ["Δp % vs alone", "parameters", "s / epoch", "Δp − hard (95 % CI)"]
lines = [f"# Architectures on {preset}: how much to share", ""]
lines += [
    f"- Date {date}, polytask commit {commit}; the CPU (`--device cpu`), OMP_NUM_THREADS={threads}, "
    f"{jobs} runs at a time.",
    f"- Data: {data}, at most {limit if limit != '0' else 'all'} examples per split; {epochs} epochs, "
    f"batch 128, Adam 1e-3, static loss weights; seeds {', '.join(seeds)} (initialisation, shuffling, dropout).",
    f"- Metrics: mean ± standard deviation over the {len(seeds)} seeds. Δp: LibMTL's mean relative "
    f"gain over the tasks against each task trained alone (hard sharing, other weights 0; mean over "
    f"the seeds), per seed, then mean ± sd.",
    f"- Last column: the difference of the mean Δp from full hard sharing with its 95 % Welch t "
    f"interval; 'not distinguishable' when the interval contains 0.",
    f"- Seconds per epoch include the validation pass; load average {load_before} before and "
    f"{load_after} after; {int(elapsed) // 60} min {int(elapsed) % 60} s for the whole report.",
    "", "Command:", "", "```sh", command, "```", "",
    "| " + " | ".join(header) + " |",
    "| " + " | ".join("---" for _ in header) + " |",
]
lines += ["| " + " | ".join(r) + " |" for r in rows]
lines.append("")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "architecture_report.sh: wrote $OUT" >&2
