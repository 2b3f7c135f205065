#!/usr/bin/env bash
# Trains one preset with every gradient-balancing strategy (same seed, data and epochs) and each
# task alone, then writes a Markdown table: per-task test metric, Δ% against the single-task
# baseline, the mean Δp (as LibMTL reports it), seconds per epoch, and the balancer's final
# weights and mean gradient cosine.
#
#   bench/mtl_report.sh PRESET                     # -> bench/results/mtl-balancers-PRESET.md
#   EPOCHS=3 LIMIT=30000 SEED=0 bench/mtl_report.sh fashion-type-brightness
#     POLYTASK  the binary (default: build/cli/polytask, else build-*/cli/polytask)
#     DATA      the data source (default: /usr/share/datasets/fashion-mnist)
#     EPOCHS    epochs per run (3); LIMIT: examples per split (30000; 0 = all); SEED (0)
#     THREADS   OMP_NUM_THREADS for every run (1: on a shared 2-core machine a second thread
#               that loses its core slows a step down many times, which would make the
#               seconds column meaningless)
#     BALANCERS the strategies to run (all seven); OUT: the Markdown file; RUNS: where the run
#               directories go (a temporary directory, removed afterwards, unless given)
#     EXTRA     more rows, "LABEL|TRAIN ARGS" separated by ";", e.g.
#               EXTRA="uncertainty, lr 0.01|--balancer uncertainty --balancer-lr 0.01"
#
# Single-task baselines: the same preset with every other task's loss weight set to 0 (static
# weights), so only that task's gradient trains the trunk. The other heads still run forward
# (a little extra time) but get no gradient; this equals training the task alone up to the
# random streams, which are the same in every run (one seed).
#
# Δ_t = ±(M_t − M_t,single) / M_t,single · 100, "+" for higher-is-better metrics (accuracy) and
# "−" for lower-is-better ones (MAE), so a positive Δ always means "better than alone".
# Δp = the mean of Δ_t over the tasks (LibMTL's Δp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PRESET="${1:?usage: bench/mtl_report.sh PRESET (e.g. fashion-type-brightness)}"
DATA="${DATA:-/usr/share/datasets/fashion-mnist}"
EPOCHS="${EPOCHS:-3}"
LIMIT="${LIMIT:-30000}"
SEED="${SEED:-0}"
THREADS="${THREADS:-1}"
BALANCERS="${BALANCERS:-static dynamic uncertainty gradnorm dwa pcgrad mgda}"
OUT="${OUT:-$ROOT/bench/results/mtl-balancers-$PRESET.md}"
# shellcheck source=bench/report_lib.sh
source "$ROOT/bench/report_lib.sh"
report_find_polytask mtl_report.sh
report_runs_dir
mkdir -p "$(dirname "$OUT")"
report_preset_tasks mtl_report.sh "$PRESET"

COMMON=(--preset "$PRESET" --data "$DATA" --epochs "$EPOCHS" --limit "$LIMIT" --seed "$SEED" --device cpu)
# The commit the runs start from (others may commit while a long report runs).
report_commit
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s)

train() {  # train NAME ARGS...: one run into $RUNS/NAME, its console output in NAME.log
  local name="$1"; shift
  echo "mtl_report.sh: $PRESET: $name" >&2
  OMP_NUM_THREADS="$THREADS" "$POLYTASK" train "${COMMON[@]}" "$@" --out "$RUNS/$name" > "$RUNS/$name.log"
}

for task in "${TASKS[@]}"; do
  weights=()
  for other in "${TASKS[@]}"; do [[ "$other" == "$task" ]] || weights+=(--loss-weight "$other=0"); done
  train "alone-$task" "${weights[@]}"
done
for balancer in $BALANCERS; do train "$balancer" --balancer "$balancer"; done
EXTRA="${EXTRA:-}"
EXTRA_LABELS=()
if [[ -n "$EXTRA" ]]; then
  IFS=';' read -r -a extras <<< "$EXTRA"
  for i in "${!extras[@]}"; do
    label="${extras[$i]%%|*}"
    read -r -a args <<< "${extras[$i]#*|}"
    EXTRA_LABELS+=("$label")
    train "extra-$i" "${args[@]}"
  done
fi
ELAPSED=$(( $(date +%s) - START ))
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

COMMAND="EPOCHS=$EPOCHS LIMIT=$LIMIT SEED=$SEED THREADS=$THREADS${EXTRA:+ EXTRA=\"$EXTRA\"} bench/mtl_report.sh $PRESET"
EXTRA_JOINED="$(IFS=';'; echo "${EXTRA_LABELS[*]:-}")"

python3 - "$RUNS" "$OUT" "$PRESET" "$DATA" "$EPOCHS" "$LIMIT" "$SEED" "$THREADS" "$COMMIT" \
  "$COMMAND" "$ELAPSED" "$LOAD_BEFORE" "$LOAD_AFTER" "${REPORT_DATE:-$(date +%Y-%m-%d)}" "${TASKS[*]}" \
  "$BALANCERS" "$EXTRA_JOINED" <<'PY'
import json, os, sys

(runs, out, preset, data, epochs, limit, seed, threads, commit, command, elapsed, load_before,
 load_after, date, tasks, balancers, extra) = sys.argv[1:]
tasks = tasks.split()
# (row label, run directory)
rows_to_show = [(b, b) for b in balancers.split()]
rows_to_show += [(label, f"extra-{i}") for i, label in enumerate(extra.split(";")) if label]

def metrics(run):
    with open(os.path.join(runs, run, "test_metrics.json")) as f:
        test = json.load(f)
    with open(os.path.join(runs, run, "metrics.jsonl")) as f:
        epochs = [json.loads(line) for line in f if line.strip()]
    return test, epochs

def task_metric(test, task):
    # The task's first metric: accuracy (higher is better) or mae (lower is better).
    for name, sign in (("accuracy", 1), ("mae", -1)):
        key = f"{task}_{name}"
        if key in test:
            return name, sign, test[key]
    raise SystemExit(f"mtl_report.sh: no test metric for task {task}")

single = {}
for task in tasks:
    test, _ = metrics(f"alone-{task}")
    single[task] = task_metric(test, task)

def fmt(v, digits=4):
    return "n/a" if v is None else f"{v:.{digits}f}"

header = ["strategy"]
for task in tasks:
    name = single[task][0]
    header += [f"{task} {name} {'↑' if single[task][1] > 0 else '↓'}", f"Δ {task} %"]
pair = f"{tasks[0]},{tasks[1]}"
header += ["Δp %", "s / epoch", "final weights", f"mean cos({pair})", "steps with cos < 0"]
rows = []
row = ["each task alone (static, other weights 0)"]
for task in tasks:
    row += [fmt(single[task][2]), "0 (baseline)"]
alone_seconds = []
for task in tasks:
    _, ep = metrics(f"alone-{task}")
    alone_seconds += [e["seconds"] for e in ep]
row += ["0", f"{sum(alone_seconds) / len(alone_seconds):.1f}", "—", "—", "—"]
rows.append(row)

for b, run in rows_to_show:
    test, ep = metrics(run)
    row, deltas = [b], []
    for task in tasks:
        name, sign, value = task_metric(test, task)
        base = single[task][2]
        delta = sign * (value - base) / base * 100 if base else float("nan")
        deltas.append(delta)
        row += [fmt(value), f"{delta:+.2f}"]
    dp = sum(deltas) / len(deltas)
    seconds = sum(e["seconds"] for e in ep) / len(ep)
    weights = ep[-1].get("weights", {})
    def epoch_mean(key):
        values = [e.get(key, {}).get(pair) for e in ep]
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None
    cosine, conflict = epoch_mean("grad_cosine"), epoch_mean("grad_conflict")
    row += [f"{dp:+.2f}", f"{seconds:.1f}", " / ".join(f"{weights.get(t, float('nan')):.3f}" for t in tasks),
            "n/a" if cosine is None else f"{cosine:+.3f}", "n/a" if conflict is None else f"{100 * conflict:.1f} %"]
    rows.append(row)

lines = [f"# Gradient balancing on {preset}: test metrics vs single-task baselines", ""]
lines += [
    f"- Date {date}, polytask commit {commit}; the CPU (`--device cpu`), OMP_NUM_THREADS={threads}.",
    f"- Data: {data}, at most {limit if limit != '0' else 'all'} examples per split (`--limit {limit}`: "
    f"the first {limit} training images, 10 % of them held out for validation, and the 10,000 test images); "
    f"{epochs} epochs, batch 128, Adam 1e-3, seed {seed} for every run.",
    f"- Every strategy with its defaults (docs/balancers.md); the loss weights the preset configures are "
    f"the starting point (static, pcgrad: the weights; mgda ignores them).",
    f"- Δ = (M − M_alone)/M_alone·100, sign-flipped for lower-is-better metrics (↓), so positive is better "
    f"than training the task alone; Δp = mean Δ over the tasks (LibMTL's Δp). One seed: differences "
    f"of a few tenths of a percent are within run-to-run noise.",
    f"- Final weights: the mean weights of the last epoch. cos: the mean cosine between the tasks' "
    f"gradients at the shared representation over all steps (negative = conflict); steps with "
    f"cos < 0: the share of steps in which the gradients conflicted (those PCGrad projects).",
    f"- Seconds per epoch include the validation pass; load average {load_before} before and {load_after} "
    f"after (other builds shared the machine); {int(elapsed) // 60} min {int(elapsed) % 60} s for the whole report.",
    "",
    "Command:",
    "",
    "```sh",
    command,
    "```",
    "",
    "| " + " | ".join(header) + " |",
    "| " + " | ".join("---" for _ in header) + " |",
]
lines += ["| " + " | ".join(r) + " |" for r in rows]
lines.append("")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "mtl_report.sh: wrote $OUT" >&2
