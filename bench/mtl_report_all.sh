#!/usr/bin/env bash
# Runs bench/mtl_report.sh on the four balancer presets with the same settings, one after the
# other: mnist-digit-parity, fashion-type-brightness, fashion-three-tasks and multi-fashion,
# each into bench/results/mtl-balancers-PRESET.md.
#
#   bench/mtl_report_all.sh                       # the defaults below: about 40 min on 2 idle cores
#   RUNS=/tmp/mtl-runs bench/mtl_report_all.sh    # keeps the runs (RUNS/PRESET/...): run it
#                                                 # again after an interruption to resume
#   PRESETS="multi-fashion" EPOCHS=5 bench/mtl_report_all.sh
#     PRESETS   the presets (the four above)
#     SEEDS ("0 1 2 3 4"), EPOCHS (DEFAULT_EPOCHS below), LIMIT (DEFAULT_LIMIT below),
#     PARALLEL (2), THREADS (1), BALANCERS (all fifteen), EXTRA, DEVICE, POLYTASK: passed on to
#               mtl_report.sh (see its header); DATA is not, each preset reads its own default
#     RUNS      a directory for the runs, one subdirectory per preset (default: temporary ones)
#     OUTDIR    where the reports go (bench/results)
#
# The defaults, EPOCHS=4 and LIMIT=10000 (9,000 training rows, 71 steps an epoch, and the whole
# 10,000-image test set), are chosen so that the whole run, 4 presets × (15 strategies + 2 or 3
# single-task baselines) × 5 seeds = 345 runs, takes about 40 minutes with PARALLEL=2 on this
# 2-core machine (Intel Xeon, AVX-512) when nothing else runs on it. Measured 2026-12-07 with the
# binary of commit bf89a59 (where upgrad ... static-from-norms were placeholders costing what
# static costs; real implementations may cost more), OMP_NUM_THREADS=1:
#   - alone on an idle machine (load 0.3), one static run, LIMIT=6000, 1 epoch: epoch seconds
#     (incl. validation) / test pass / whole run: mnist-digit-parity 1.57 / 0.54 / 2.7 s,
#     fashion-type-brightness 2.07 / 0.59 / 3.2 s, fashion-three-tasks 2.29 / 0.74 / 3.7 s,
#     multi-fashion 0.94 / 0.35 / 2.0 s; two runs at once took as long per epoch as one (1.4-1.6
#     s for mnist-digit-parity, 2.1-2.3 s for fashion-three-tasks), so PARALLEL=2 halves the time.
#     That is per run about 0.6 s + EPOCHS × LIMIT × (0.26, 0.35, 0.38, 0.16 ms) + the test pass
#     (0.09, 0.10, 0.12, 0.06 ms per test image) for the four presets in the order above: with
#     EPOCHS=4, LIMIT=10000, 11.9, 15.4, 17.2 and 7.6 s, 345 runs in 75 min of run time, 38 min
#     two at a time.
#   - at these settings (EPOCHS=4 LIMIT=10000, static and mgda, two at a time) while other builds
#     loaded the machine (load average 6.8): CPU seconds per run 12.0-12.4 (mnist-digit-parity),
#     17.9 (fashion-type-brightness), 17.8-18.2 (fashion-three-tasks), 6.9-7.0 (multi-fashion), the
#     wall time 2.2-3 times that; the CPU seconds give 79 min of run time, 40 min two at a time.
#   With other work on the machine the report takes correspondingly longer (under that load
#   average of 6.8 about 2.5 times as long).
#   The 2026-12-07 results ran mnist-digit-parity and multi-fashion at EPOCHS=3 LIMIT=8000 and the
#   two BatchNorm presets (fashion-type-brightness, fashion-three-tasks) at EPOCHS=4 LIMIT=16000:
#   with fewer than about 450 steps, Keras-style BatchNorm's running statistics (momentum 0.99)
#   have not settled and those presets' test metrics scatter too widely to compare anything
#   (their single-task type accuracy was 0.27 ± 0.15 at 3 × 57 steps, 0.77 ± 0.02 at 4 × 113).
#   So the default LIMIT is 16000 (about 1.6 times the time estimated above).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFAULT_EPOCHS=4
DEFAULT_LIMIT=16000
PRESETS="${PRESETS:-mnist-digit-parity fashion-type-brightness fashion-three-tasks multi-fashion}"
export SEEDS="${SEEDS:-0 1 2 3 4}"
export EPOCHS="${EPOCHS:-$DEFAULT_EPOCHS}"
export LIMIT="${LIMIT:-$DEFAULT_LIMIT}"
export PARALLEL="${PARALLEL:-2}"
export THREADS="${THREADS:-1}"
OUTDIR="${OUTDIR:-$ROOT/bench/results}"
[[ -z "${DATA:-}" ]] || { echo "mtl_report_all.sh: DATA would apply to every preset; run mtl_report.sh per preset instead" >&2; exit 1; }
[[ -z "${OUT:-}" ]] || { echo "mtl_report_all.sh: OUT names one file; use OUTDIR" >&2; exit 1; }

START=$(date +%s)
child=""
# An interruption reaches the report running now (which stops its runs).
trap '[[ -z "$child" ]] || kill "$child" 2>/dev/null; exit 130' INT TERM
for preset in $PRESETS; do
  echo "mtl_report_all.sh: $preset (SEEDS=\"$SEEDS\" EPOCHS=$EPOCHS LIMIT=$LIMIT PARALLEL=$PARALLEL)" >&2
  if [[ -n "${RUNS:-}" ]]; then
    RUNS="$RUNS/$preset" OUT="$OUTDIR/mtl-balancers-$preset.md" "$ROOT/bench/mtl_report.sh" "$preset" &
  else
    OUT="$OUTDIR/mtl-balancers-$preset.md" "$ROOT/bench/mtl_report.sh" "$preset" &
  fi
  child=$!
  wait "$child"
  child=""
done
ELAPSED=$(( $(date +%s) - START ))
echo "mtl_report_all.sh: $PRESETS in $((ELAPSED / 60)) min $((ELAPSED % 60)) s; the reports are in $OUTDIR" >&2
