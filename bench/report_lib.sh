# Shared by the multi-task reports (mtl_report.sh, architecture_report.sh); sourced, not run.
# Each function sets globals the reports use.

# POLYTASK: the binary given, else build/cli/polytask, else build-*/cli/polytask.
report_find_polytask() {
  local script="$1" candidate
  if [[ -z "${POLYTASK:-}" ]]; then
    for candidate in "$ROOT"/build/cli/polytask "$ROOT"/build-*/cli/polytask; do
      [[ -x "$candidate" ]] && { POLYTASK="$candidate"; break; }
    done
  fi
  [[ -x "${POLYTASK:-}" ]] || { echo "$script: no polytask binary (set POLYTASK=...)" >&2; exit 1; }
}

# RUNS: where the run directories go; a temporary directory removed at exit unless given.
report_runs_dir() {
  if [[ -z "${RUNS:-}" ]]; then
    RUNS="$(mktemp -d)"
    trap 'rm -rf "$RUNS"' EXIT
  fi
  mkdir -p "$RUNS"
}

# TASKS: the preset's tasks, in order (at least two).
report_preset_tasks() {
  local script="$1" preset="$2"
  mapfile -t TASKS < <("$POLYTASK" models --show "$preset" |
    awk '/^\[\[tasks\]\]/ { t = 1; next } t && /^name = / { gsub(/"/, "", $3); print $3; t = 0 }')
  [[ ${#TASKS[@]} -ge 2 ]] || { echo "$script: $preset has fewer than two tasks" >&2; exit 1; }
}

# COMMIT: the commit the runs start from, and whether the tree differs from it (the reports'
# own tables under bench/results/ aside).
report_commit() {
  COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if git -C "$ROOT" status --porcelain -- . ':!bench/results' 2>/dev/null | grep -q .; then
    COMMIT+=" plus uncommitted changes"
  fi
}
