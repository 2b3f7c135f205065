#!/usr/bin/env bash
# Set-up + build with warnings as errors + the whole test suite (CTest). GPU tests skip with a
# reason when no device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${POLYTASK_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPOLYTASK_WARNINGS_AS_ERRORS=ON
cmake --build "$build" -j "$(nproc)"
# The limit per test lives here, not in a TIMEOUT property (which would override it): the
# emulated tests need minutes on 2 cores; bench/gpu_check.sh gives real-GPU tests 60 s.
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout "${POLYTASK_TEST_TIMEOUT:-900}"
