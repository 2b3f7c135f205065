// Shared pieces of the GPU benchmarks: CUDA-event timing for Google Benchmark's manual time,
// the device's measured copy bandwidth (the floor for memory-bound kernels), and counters.
#pragma once

#include <benchmark/benchmark.h>

#include <functional>
#include <string>

#include "kernels/cuda/check.h"

namespace polytask::bench {

// Times `body` (one run of the kernel under test) with CUDA events and reports it as the
// iteration's manual time. The first call of the benchmark is a warm-up outside the timing.
inline void time_with_events(benchmark::State& state, const std::function<void()>& body) {
  cudaEvent_t start, stop;
  POLYTASK_CUDA_CHECK(cudaEventCreate(&start));
  POLYTASK_CUDA_CHECK(cudaEventCreate(&stop));
  body();  // warm-up: module load, caches, lazy allocations
  POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto _ : state) {
    POLYTASK_CUDA_CHECK(cudaEventRecord(start));
    body();
    POLYTASK_CUDA_CHECK(cudaEventRecord(stop));
    POLYTASK_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    POLYTASK_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(double(ms) * 1e-3);
  }
  POLYTASK_CUDA_CHECK(cudaEventDestroy(start));
  POLYTASK_CUDA_CHECK(cudaEventDestroy(stop));
}

// Rate counters Google Benchmark divides by the manual time: FLOP/s and bytes/s.
inline void set_rates(benchmark::State& state, double flops_per_iter, double bytes_per_iter) {
  if (flops_per_iter > 0)
    state.counters["FLOP/s"] = benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate,
                                                  benchmark::Counter::OneK::kIs1000);
  if (bytes_per_iter > 0)
    state.counters["bytes/s"] = benchmark::Counter(bytes_per_iter, benchmark::Counter::kIsIterationInvariantRate,
                                                   benchmark::Counter::OneK::kIs1024);
}

// True (and the benchmark skipped with the reason) when no GPU is present.
inline bool skip_without_gpu(benchmark::State& state) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    state.SkipWithError("no CUDA device present");
    return true;
  }
  return false;
}

}  // namespace polytask::bench
