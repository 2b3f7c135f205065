// When CPU kernels go parallel. Starting an OpenMP region costs microseconds and its spinning
// threads compete with OpenBLAS's, so loops over fewer elements than this stay on one thread.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace polytask::kernels::cpu {

constexpr int64_t kParallelThreshold = int64_t{1} << 15;

// The threads worth starting for a loop of `work` units, counted in memory-bound elements (a
// float loaded and one stored, ~0.3 ns each on one core): one thread per kParallelGrain units,
// at most omp_get_max_threads(), and 1 (no parallel region) below two grains. With 2 threads
// that is kParallelThreshold, as before; with 32 it keeps each thread at >= 16K elements (a
// few microseconds, more than its start and join cost) instead of splitting 32K elements 32
// ways. Loops whose elements cost more than a load and a store (a Philox block, exp, sqrt and
// a division) count each element as several units. The thread count never changes results:
// the loops that use this are elementwise or give each thread whole channels or planes.
constexpr int64_t kParallelGrain = kParallelThreshold / 2;

inline int parallel_threads(int64_t work) {
  const int64_t wanted = work / kParallelGrain;
  if (wanted < 2) return 1;
#if defined(_OPENMP)
  return static_cast<int>(std::min<int64_t>(wanted, omp_get_max_threads()));
#else
  return 1;
#endif
}

}  // namespace polytask::kernels::cpu
