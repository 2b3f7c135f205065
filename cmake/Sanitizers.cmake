# Sanitizer and fuzzing builds (scripts/ci-reliability.sh runs both).
#
# POLYTASK_SANITIZE: a -fsanitize= list ("address,undefined") applied to every target, so the
# whole suite runs instrumented. UB stops the program (-fno-sanitize-recover) instead of
# printing and carrying on, so a test cannot pass through undefined behaviour; frame pointers
# keep ASan's stacks readable.
#
# POLYTASK_BUILD_FUZZERS: the libFuzzer targets of tests/fuzz. libFuzzer ships with clang only,
# so another compiler is an error. Every target gets coverage instrumentation plus ASan and
# UBSan (-fsanitize=fuzzer-no-link); the fuzz executables link libFuzzer's main.
set(POLYTASK_SANITIZE "" CACHE STRING
    "Sanitizers for every target, as for -fsanitize= (e.g. address,undefined); empty: none")
option(POLYTASK_BUILD_FUZZERS "Build the libFuzzer targets in tests/fuzz (needs clang)" OFF)

set(polytask_sanitize "${POLYTASK_SANITIZE}")
if(POLYTASK_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "POLYTASK_BUILD_FUZZERS needs clang (libFuzzer), but the C++ compiler is "
                        "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER}: configure with "
                        "-DCMAKE_CXX_COMPILER=clang++")
  endif()
  set(polytask_sanitize "fuzzer-no-link,address,undefined")
endif()

if(polytask_sanitize)
  if(POLYTASK_WITH_CUDA)
    message(FATAL_ERROR "sanitizer builds are CPU builds: add -DPOLYTASK_ENABLE_CUDA=OFF")
  endif()
  message(STATUS "polytask: -fsanitize=${polytask_sanitize}")
  add_compile_options(-fsanitize=${polytask_sanitize} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  string(REPLACE "fuzzer-no-link," "" polytask_sanitize_link "${polytask_sanitize}")
  add_link_options(-fsanitize=${polytask_sanitize_link})
endif()
