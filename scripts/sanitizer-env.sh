# Sourced by scripts/ci-reliability.sh and scripts/fuzz-long.sh: the sanitizer runtime options
# every sanitized process of theirs runs with.
# LSan: the fontconfig suppression is its one-off cache (see tests/lsan.supp); print_suppressions=0
#   because LSan otherwise prints its table of used suppressions at the exit of every process that
#   used one, after the process's own last line (which the CLI tests read).
# UBSan: stacks in reports; -fno-sanitize-recover (cmake/Sanitizers.cmake) already stops at the
#   first finding.
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1
# The fuzz targets: an impossible allocation is a finding (allocator_may_return_null=0, ASan
# reports it), and so is a leak.
fuzz_asan_options=allocator_may_return_null=0:detect_leaks=1
