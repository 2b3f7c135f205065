#!/usr/bin/env bash
# Set-up + build + the main job: trains the default multi-task preset and prints per-head test
# metrics. Extra arguments go to 'polytask train' (see 'polytask train --help').
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${POLYTASK_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target polytask_cli
"$build/cli/polytask" train "$@"
