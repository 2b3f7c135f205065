// Our SGEMM (kernels/cuda/gemm.cu) against cuBLAS SGEMM (FP32 math, no TF32), same inputs,
// same run, timed with CUDA events (Google Benchmark manual time); and our tensor-core GEMM
// (GemmOptions::precision = TF32 / BF16) against cuBLAS with the same precision.
//
// Rows: sgemm/<cublas|ours[_tiles]>/<layout>/<m>x<n>x<k>, layout NN = A·B, TN = Aᵀ·B,
// NT = A·Bᵀ, all row-major with tight strides, alpha = 1, beta = 0;
// gemm_tf32/... and gemm_bf16/... the same with tensor cores: ours rounds FP32 operands to
// TF32/BF16 as it stages them; cuBLAS is cublasGemmEx on the same FP32 matrices with
// CUBLAS_COMPUTE_32F_FAST_TF32 / CUBLAS_COMPUTE_32F_FAST_16BF (it converts internally too).
// FP32 accumulation and FP32 C on both sides. NVIDIA_TF32_OVERRIDE must be unset. Counters:
//   FLOP/s, bytes/s   2·m·n·k and the compulsory bytes below, over the measured time;
//   floor_us          the H100 floor for the shape (table below);
//   time_vs_cublas    (ours rows) our time / cuBLAS's time, both re-timed back to back right
//                     after the row's own loop (kRatioReps launches each), so the ratio
//                     compares like with like: < 1 means faster than cuBLAS.
//
// Floors, H100 SXM: FP32 without tensor cores 67 TFLOP/s, HBM3 3.35 TB/s. The floor is the
// larger of FLOPs / 67e12 and bytes / 3.35e12, bytes = 4·(m·k + k·n + m·n) (each operand read
// once, C written once). A launch costs ~2-4 µs of fixed overhead on top, which dominates
// every workload shape. Tensor-core rows use NVIDIA's dense (no sparsity) H100 SXM figures:
// TF32 494.7 TFLOP/s, BF16 989.4 TFLOP/s (an H100 PCIe has 378 / 756); bytes are the same FP32
// matrices. E.g. 4096^3: 278 µs (TF32), 139 µs (BF16), compute; 1024^3: 4.3 µs compute (TF32),
// 3.8 µs memory (BF16: 12.6 MB at 3.35 TB/s); the 1600-wide workload shapes: 0.51 µs, memory,
// for both. wmma kernels (mma.sync underneath, no wgmma/TMA) cannot reach these floors on
// Hopper: expect a fraction of them.
//
//   m x n x k          what                      FLOP        bytes     floor (µs)
//   1024^3             square                    2.147 G     12.6 MB    32.1  compute
//   2048^3             square                    17.18 G     50.3 MB   256    compute
//   4096^3             square                    137.4 G    201 MB    2051    compute
//   128x128x1600   NT  dense 1600->128 forward   52.4 M      1.70 MB    0.78 compute
//   128x1600x128   NN  ... backward data         52.4 M      1.70 MB    0.78 compute
//   128x1600x128   TN  ... backward filter       52.4 M      1.70 MB    0.78 compute
//   1600x128x128   NN  tall product              52.4 M      1.70 MB    0.78 compute
//   128x10x128     NT  dense 128->10 forward     0.328 M     75.8 kB    0.023 memory
//   128x128x10     NN  ... backward data         0.328 M     75.8 kB    0.023 memory
//   10x128x128     TN  ... backward filter       0.328 M     75.8 kB    0.023 memory
//
// Caches: the workload shapes fit in the 50 MB L2 and stay there between iterations, for us
// and for cuBLAS alike (as they would in a training step); the 4096^3 operands do not.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench.h"
#include "kernels/gemm.h"
#include "kernels/vendor/cublas.h"

namespace polytask::bench {
namespace {

using kernels::MathPrecision;
using kernels::Transpose;
using kernels::cuda::GemmOptions;
using kernels::cuda::GemmTiles;

struct Layout {
  Transpose a, b;
  const char* name;
};
constexpr Layout kNN{Transpose::No, Transpose::No, "NN"};
constexpr Layout kTN{Transpose::Yes, Transpose::No, "TN"};
constexpr Layout kNT{Transpose::No, Transpose::Yes, "NT"};

using DeviceFloats = DeviceArray<float>;

// Values in [-1, 1) from a fixed linear congruential sequence: cheap for 16M elements.
void fill_random(const DeviceFloats& dst, size_t count, uint32_t seed) {
  const std::vector<float> host = lcg_values(count, seed, -1.0f, 1.0f);
  POLYTASK_CUDA_CHECK(
      cudaMemcpy(dst.get(), host.data(), count * sizeof(float), cudaMemcpyHostToDevice));
}

struct Problem {
  Layout layout;
  int64_t m, n, k;
  int64_t lda, ldb, ldc;
  DeviceFloats a, b, c;

  Problem(Layout which, int64_t rows, int64_t cols, int64_t depth)
      : layout(which),
        m(rows),
        n(cols),
        k(depth),
        lda(which.a == Transpose::No ? depth : rows),
        ldb(which.b == Transpose::No ? cols : depth),
        ldc(cols),
        a(size_t(rows * depth)),
        b(size_t(depth * cols)),
        c(size_t(rows * cols)) {
    fill_random(a, size_t(rows * depth), 1);
    fill_random(b, size_t(depth * cols), 2);
  }
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
  double bytes() const { return 4.0 * double(m * k + k * n + m * n); }
  double floor_us(MathPrecision precision) const {
    return std::max(flops() / peak_flops(precision), bytes() / kHbmBytes) * 1e6;
  }
};

const kernels::vendor::CublasHandle& cublas() {
  static const kernels::vendor::CublasHandle handle;
  return handle;
}

void run_cublas(const Problem& p, MathPrecision precision) {
  if (precision == MathPrecision::FP32)
    kernels::vendor::cublas_sgemm_row_major(cublas(), p.layout.a, p.layout.b, p.m, p.n, p.k, 1.0f,
                                            p.a.get(), p.lda, p.b.get(), p.ldb, 0.0f, p.c.get(),
                                            p.ldc, nullptr);
  else
    kernels::vendor::cublas_gemm_row_major(cublas(), precision, p.layout.a, p.layout.b, p.m, p.n,
                                           p.k, 1.0f, p.a.get(), p.lda, p.b.get(), p.ldb, 0.0f,
                                           p.c.get(), p.ldc, nullptr);
}

void run_ours(const Problem& p, GemmTiles tiles, MathPrecision precision) {
  GemmOptions options;
  options.tiles = tiles;
  options.precision = precision;
  kernels::cuda::gemm(p.layout.a, p.layout.b, p.m, p.n, p.k, 1.0f, p.a.get(), p.lda, p.b.get(),
                      p.ldb, 0.0f, p.c.get(), p.ldc, nullptr, options);
}

std::vector<float> download(const Problem& p) {
  std::vector<float> host(size_t(p.m * p.n));
  POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
  POLYTASK_CUDA_CHECK(
      cudaMemcpy(host.data(), p.c.get(), host.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return host;
}

// Validate before timing: ours against cuBLAS (same precision) on the benchmark's own inputs.
// Both are FP32 sums of k terms of magnitude <= 1 in different orders; 1e-5·sqrt(k) of the
// largest |C| is far above their rounding differences and far below any indexing error. With
// TF32/BF16 operands each side may round an operand differently (cuBLAS's conversion rule is
// not documented): per term by up to 2u·|a||b| (u = 2^-11, 2^-8), random in sign, so the sums
// differ by ~0.7u·sqrt(k) (|a|, |b| uniform in [-1, 1)); 6u·sqrt(k) more is ~9 standard
// deviations, while a wrong or missing term moves an element by ~|C| ~ 0.6·sqrt(k).
bool agrees_with_cublas(const Problem& p, GemmTiles tiles, MathPrecision precision,
                        std::string& why) {
  run_cublas(p, precision);
  const std::vector<float> theirs = download(p);
  run_ours(p, tiles, precision);
  const std::vector<float> ours = download(p);
  double largest = 0, worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    largest = std::max(largest, std::abs(double(theirs[i])));
    const double diff = std::abs(double(ours[i]) - double(theirs[i]));
    worst = std::isnan(diff) ? INFINITY : std::max(worst, diff);
  }
  const double u = precision == MathPrecision::TF32   ? std::ldexp(1.0, -11)
                   : precision == MathPrecision::BF16 ? std::ldexp(1.0, -8)
                                                      : 0.0;
  const double root_k = std::sqrt(double(p.k));
  if (worst <= 1e-5 * root_k * std::max(largest, 1.0) + 6.0 * u * root_k) return true;
  why = "ours differs from cuBLAS by " + std::to_string(worst) + " (largest |C| " +
        std::to_string(largest) + ")";
  return false;
}

void common_counters(benchmark::State& state, const Problem& p, MathPrecision precision) {
  set_rates(state, p.flops(), p.bytes());
  state.counters["floor_us"] = p.floor_us(precision);
}

void bm_cublas(benchmark::State& state, Layout layout, int64_t m, int64_t n, int64_t k,
               MathPrecision precision) {
  if (skip_without_gpu(state)) return;
  const Problem p(layout, m, n, k);
  time_with_events(state, [&] { run_cublas(p, precision); });
  common_counters(state, p, precision);
}

void bm_ours(benchmark::State& state, Layout layout, int64_t m, int64_t n, int64_t k,
             GemmTiles tiles, MathPrecision precision) {
  if (skip_without_gpu(state)) return;
  const Problem p(layout, m, n, k);
  std::string why;
  if (!agrees_with_cublas(p, tiles, precision, why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  time_with_events(state, [&] { run_ours(p, tiles, precision); });
  common_counters(state, p, precision);
  report_time_ratio(
      state, "time_vs_cublas", [&] { run_ours(p, tiles, precision); },
      [&] { run_cublas(p, precision); });
}

const char* tiles_suffix(GemmTiles tiles) {
  switch (tiles) {
    case GemmTiles::Auto:
      return "";
    case GemmTiles::Large:
      return "_128x128";
    case GemmTiles::Medium:
      return "_64x64";
    case GemmTiles::Small:
      return "_32x32";
  }
  return "";
}

const char* row_prefix(MathPrecision precision) {
  switch (precision) {
    case MathPrecision::FP32:
      return "sgemm";
    case MathPrecision::TF32:
      return "gemm_tf32";
    case MathPrecision::BF16:
      return "gemm_bf16";
  }
  return "?";
}

void register_shape(MathPrecision precision, Layout layout, int64_t m, int64_t n, int64_t k,
                    bool every_tile) {
  const std::string shape = std::string(layout.name) + "/" + std::to_string(m) + "x" +
                            std::to_string(n) + "x" + std::to_string(k);
  const std::string prefix = row_prefix(precision);
  const benchmark::TimeUnit unit =
      m * n * k >= (int64_t(1) << 30) ? benchmark::kMillisecond : benchmark::kMicrosecond;
  benchmark::RegisterBenchmark((prefix + "/cublas/" + shape).c_str(), bm_cublas, layout, m, n, k,
                               precision)
      ->UseManualTime()
      ->Unit(unit);
  for (const GemmTiles tiles :
       {GemmTiles::Auto, GemmTiles::Large, GemmTiles::Medium, GemmTiles::Small}) {
    if (tiles != GemmTiles::Auto && !every_tile) continue;
    benchmark::RegisterBenchmark(
        (prefix + "/ours" + std::string(tiles_suffix(tiles)) + "/" + shape).c_str(), bm_ours,
        layout, m, n, k, tiles, precision)
        ->UseManualTime()
        ->Unit(unit);
  }
}

void register_all() {
  for (const MathPrecision precision :
       {MathPrecision::FP32, MathPrecision::TF32, MathPrecision::BF16}) {
    for (const int64_t size : {1024, 2048, 4096})
      for (const Layout layout : {kNN, kTN, kNT})
        register_shape(precision, layout, size, size, size, size == 1024);
    // The workload (batch 128, dense 1600 -> 128 -> 10), every tile configuration so that the
    // Auto heuristic can be checked against the alternatives.
    register_shape(precision, kNT, 128, 128, 1600, true);
    register_shape(precision, kNN, 128, 1600, 128, true);
    register_shape(precision, kTN, 128, 1600, 128, true);
    register_shape(precision, kNN, 1600, 128, 128, true);
    register_shape(precision, kNT, 128, 10, 128, true);
    register_shape(precision, kNN, 128, 128, 10, true);
    register_shape(precision, kTN, 10, 128, 128, true);
  }
}

}  // namespace
}  // namespace polytask::bench

int main(int argc, char** argv) {
  return polytask::bench::run_benchmarks(argc, argv, polytask::bench::register_all);
}
