#!/usr/bin/env bash
# Long fuzz runs for the record (bench/results/fuzz-*.md): each libFuzzer target of tests/fuzz
# runs from a copy of its committed seeds until it has executed RUNS inputs or MAX_SECONDS have
# passed, JOBS targets at a time, under the same sanitizer options as scripts/ci-reliability.sh.
# Prints one markdown table row per target; a crash fails the script and names the input.
set -euo pipefail

usage() {
  cat <<'TEXT'
usage: scripts/fuzz-long.sh [--runs N] [--max-seconds S] [--jobs J] [--build DIR] [--continue]
                           [TARGET...]
  --runs N         inputs per target (default 10000000)
  --max-seconds S  time limit per target (default 3600)
  --jobs J         targets run at once (default 1: the rates then do not compete)
  --build DIR      a build with -DPOLYTASK_BUILD_FUZZERS=ON (default build-fuzz)
  --continue       start from the corpus an earlier run grew (DIR/fuzz-long/corpus-TARGET)
                   instead of the committed seeds, so a run can be taken further in legs
  TARGET           names like idx, events_file (default: every folder of tests/fuzz/corpus)
TEXT
}
runs=10000000 max_seconds=3600 jobs=1 build=build-fuzz resume=0 targets=()
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --max-seconds) max_seconds=${2:?--max-seconds needs a number}; shift ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift ;;
    --build) build=${2:?--build needs a folder}; shift ;;
    --continue) resume=1 ;;
    -*) echo "fuzz-long: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
cd "$(dirname "$0")/.."
if ((${#targets[@]} == 0)); then
  for seeds in tests/fuzz/corpus/*/; do targets+=("$(basename "$seeds")"); done
fi
for t in "${targets[@]}"; do
  [[ -x $build/tests/fuzz/fuzz_$t ]] || { echo "fuzz-long: $build/tests/fuzz/fuzz_$t is not built" >&2; exit 1; }
done
source scripts/sanitizer-env.sh
export ASAN_OPTIONS=$fuzz_asan_options
out=$build/fuzz-long
mkdir -p "$out"

# One target: its row, or a non-zero exit on a crash.
run_one() {
  local t=$1 corpus=$out/corpus-$1 artifacts=$out/artifacts-$1 log=$out/$1.log start end
  rm -rf "$artifacts" && mkdir -p "$artifacts"
  if ((resume)) && [[ -d $corpus ]]; then
    mv "$log" "$log.earlier" 2>/dev/null || true
  else
    rm -rf "$corpus" && mkdir -p "$corpus"
    cp tests/fuzz/corpus/"$t"/* "$corpus/"
  fi
  start=$(date +%s)
  if ! "$build/tests/fuzz/fuzz_$t" -runs="$runs" -max_total_time="$max_seconds" \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz-long: fuzz_$t crashed on $(ls "$artifacts")" >&2
    return 1
  fi
  end=$(date +%s)
  local execs cov ft files bytes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  files=$(find "$corpus" -type f | wc -l)
  bytes=$(du -sb "$corpus" | cut -f1)
  printf '| fuzz_%s | %s | %s | %s | %s / %s | %s | %s | 0 |\n' "$t" "$execs" "$((end - start))" \
    "$((execs / (end - start > 0 ? end - start : 1)))" "$files" "$bytes" "$cov" "$ft"
}
export -f run_one
export runs max_seconds build out resume

echo "| target | execs | seconds | exec/s | corpus after (files / bytes) | cov | ft | crashes |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {}
