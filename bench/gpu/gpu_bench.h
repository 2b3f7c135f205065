// Shared pieces of the GPU benchmarks: CUDA-event timing for Google Benchmark's manual time,
// the device's measured copy bandwidth (the floor for memory-bound kernels), the H100 peaks the
// floor_us counters use, re-timing for the ratio-vs-baseline counters, and counters.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/precision.h"

namespace polytask::bench {

inline constexpr double kFp32Flops = 67e12;     // H100 SXM, FP32 non-tensor
inline constexpr double kTf32Flops = 494.7e12;  // H100 SXM, TF32 tensor cores, dense
inline constexpr double kBf16Flops = 989.4e12;  // H100 SXM, BF16 tensor cores, dense
inline constexpr double kHbmBytes = 3.35e12;    // H100 SXM, HBM3 peak
// Launches of each side of a ratio-vs-baseline counter, re-timed back to back after the row.
inline constexpr int kRatioReps = 20;

// The peak math rate of a precision (FP32 on the CUDA cores, TF32/BF16 on the tensor cores).
inline double peak_flops(kernels::MathPrecision precision) {
  switch (precision) {
    case kernels::MathPrecision::FP32:
      return kFp32Flops;
    case kernels::MathPrecision::TF32:
      return kTf32Flops;
    case kernels::MathPrecision::BF16:
      return kBf16Flops;
  }
  return kFp32Flops;
}

// A device array for the benchmarks (never empty: at least one element is allocated).
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t count) : count_(count) {
    POLYTASK_CUDA_CHECK(
        cudaMalloc(reinterpret_cast<void**>(&data_), std::max<size_t>(count, 1) * sizeof(T)));
  }
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() const { return data_; }
  size_t size() const { return count_; }

  void upload(const std::vector<T>& host) const {
    POLYTASK_CUDA_CHECK(
        cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
    POLYTASK_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  size_t count_;
  T* data_ = nullptr;
};

// Values in [lo, hi) from a fixed linear congruential sequence: cheap for 100M+ elements.
inline std::vector<float> lcg_values(size_t count, uint32_t seed, float lo, float hi) {
  std::vector<float> host(count);
  uint32_t state = seed;
  for (float& v : host) {
    state = state * 1664525u + 1013904223u;
    v = lo + static_cast<float>(state >> 8) * ((hi - lo) / 16777216.0f);
  }
  return host;
}

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

// Mean milliseconds of `reps` back-to-back runs of `body`, after one warm-up run.
inline double mean_ms(const std::function<void()>& body, int reps) {
  cudaEvent_t start, stop;
  POLYTASK_CUDA_CHECK(cudaEventCreate(&start));
  POLYTASK_CUDA_CHECK(cudaEventCreate(&stop));
  body();
  POLYTASK_CUDA_CHECK(cudaEventRecord(start));
  for (int i = 0; i < reps; ++i) body();
  POLYTASK_CUDA_CHECK(cudaEventRecord(stop));
  POLYTASK_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  POLYTASK_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  POLYTASK_CUDA_CHECK(cudaEventDestroy(start));
  POLYTASK_CUDA_CHECK(cudaEventDestroy(stop));
  return double(ms) / reps;
}

// Counter `name` = time of `ours` / time of `baseline`, both re-timed back to back (kRatioReps
// runs each, ours first) after the row's own loop.
inline void report_time_ratio(benchmark::State& state, const char* name,
                              const std::function<void()>& ours,
                              const std::function<void()>& baseline) {
  const double mine = mean_ms(ours, kRatioReps);
  const double theirs = mean_ms(baseline, kRatioReps);
  state.counters[name] = mine / theirs;
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

// The benchmarks' main: registers the rows, then runs the ones the command line selects.
inline int run_benchmarks(int argc, char** argv, void (*register_all)()) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace polytask::bench
