// The conv trunk's memory-bound ops — max pooling, batch normalisation, dropout (kernels/cuda/
// {pool2d,batchnorm,dropout}.cu) — against cuDNN (max pooling and batch norm) and a device copy
// (dropout), same inputs, same run, timed with CUDA events (Google Benchmark manual time).
//
// Rows: trunk/<op>/<ours|cudnn|copy>/<shape>. Counters:
//   bytes/s         the bytes below over the measured time (each implementation's own bytes);
//   floor_us        those bytes at the H100 SXM's HBM3 peak (3.35 TB/s);
//   time_vs_cudnn   (ours rows of pooling and batch norm) our time / cuDNN's time, both re-timed
//                   back to back right after the row's own loop (kRatioReps calls each), so the
//                   ratio compares like with like: < 1 means faster than cuDNN. Absent when the
//                   build has no cuDNN (the cudnn rows are then not registered);
//   time_vs_copy    (ours dropout rows) our time / a cudaMemcpyAsync of the same array, timed
//                   the same way.
//
// Bytes per call (float and int32 = 4 bytes; in/out = input/output elements, n = elements):
//   max-pool forward   ours: read x, write y and argmax = 4in + 8out; cuDNN keeps no argmax: 4in + 4out
//   max-pool backward  ours: read dy and argmax, write dx = 8out + 4in;
//                      cuDNN recomputes the maxima: read x, y, dy, write dx = 8in + 8out
//   BN train forward   read x for the statistics, read x again and write y = 12n (a single pass
//                      would need 8n, but x must be reduced before it can be normalised)
//   BN backward        read x, dy for the sums; read x, dy, write dx = 20n (single pass: 12n)
//   dropout forward    read x, write y = 8n, the same as the copy baseline
//
//   op / shape (2x2 pools)         ours bytes   floor      cuDNN bytes   floor
//   max-pool fwd 128x32x26x26      16.6 MB      4.96 µs    13.8 MB       4.13 µs
//                128x64x11x11       5.6 MB      1.67 µs     4.8 MB       1.43 µs
//                128x32x32x32      25.2 MB      7.51 µs    21.0 MB       6.26 µs
//                1024x32x26x26    132.9 MB     39.7 µs    110.8 MB      33.1 µs
//                1024x64x11x11     44.8 MB     13.4 µs     38.3 MB      11.4 µs
//                1024x32x32x32    201.3 MB     60.1 µs    167.8 MB      50.1 µs
//   max-pool bwd (same shapes)     = forward    = forward   27.7 / 9.6 / 41.9 MB   8.27 / 2.86 / 12.5 µs
//                                                          221.5 / 76.5 / 335.5 MB 66.1 / 22.9 / 100.2 µs
//   BN fwd (12n) / bwd (20n), both implementations:
//                128x32x676        33.2 / 55.4 MB      9.92 / 16.5 µs
//                128x64x121        11.9 / 19.8 MB      3.55 / 5.92 µs
//                128x32x1024       50.3 / 83.9 MB     15.0 / 25.0 µs
//                128x128x1          0.20 / 0.33 MB     0.06 / 0.10 µs
//                1024x32x676      265.8 / 443.0 MB    79.4 / 132.3 µs
//                1024x64x121       95.2 / 158.6 MB    28.4 / 47.3 µs
//                1024x32x1024     402.7 / 671.1 MB   120.2 / 200.3 µs
//                1024x128x1         1.57 / 2.62 MB     0.47 / 0.78 µs
//   dropout fwd (8n, = copy)  128x64: 65.5 kB, 0.02 µs; 1024x64: 0.52 MB, 0.16 µs;
//                             2^24: 134 MB, 40.1 µs
//
// A launch costs ~2-4 µs of fixed overhead (BN takes two launches on its split path), which
// dominates every row whose floor is below ~10 µs: the batch-128 rows are launch-bound for us
// and cuDNN alike. Caches: buffers are not rotated, so the batch-128 shapes (≤ 50 MB) stay in
// the 50 MB L2 between iterations — as they would between layers of a training step — and may
// beat the HBM floor; the batch-1024 shapes and 2^24 do not fit and stream from HBM.
//
// Every row validates before timing: ours against the CPU reference on the row's own inputs
// (bit for bit for pooling and dropout, within the test suite's tolerances for batch norm).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench.h"
#include "kernels/batchnorm.h"
#include "kernels/dropout.h"
#include "kernels/pool2d.h"
#include "kernels/reduce.h"
#if defined(POLYTASK_WITH_CUDNN)
#include "kernels/vendor/cudnn_ops.h"
#endif

namespace polytask::bench {
namespace {

namespace cuda = kernels::cuda;
using kernels::BatchNormShape;
using kernels::GradMode;
using kernels::MaxPool2dShape;

constexpr float kEps = 1e-3f, kMomentum = 0.99f;
constexpr float kDropoutRate = 0.3f;
constexpr uint64_t kDropoutSeed = 1234, kDropoutStream = 5678;

#if defined(POLYTASK_WITH_CUDNN)
constexpr bool kHaveCudnn = true;
const kernels::vendor::CudnnHandle& cudnn() {
  static const kernels::vendor::CudnnHandle handle;
  return handle;
}
#else
constexpr bool kHaveCudnn = false;
#endif

void report(benchmark::State& state, double bytes_per_call) {
  set_rates(state, 0, bytes_per_call);
  state.counters["floor_us"] = bytes_per_call / kHbmBytes * 1e6;
}

// Validation runs once per row (Google Benchmark calls a row's function several times while it
// sizes the iteration count).
bool first_time(const std::string& row) {
  static std::set<std::string> seen;
  return seen.insert(row).second;
}

bool check(benchmark::State& state, bool ok, const std::string& what) {
  if (!ok) state.SkipWithError(("validation failed: " + what).c_str());
  return ok;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// |a - b| <= abs + rel·max(|a|, |b|) everywhere.
bool within(const std::vector<float>& a, const std::vector<float>& b, double rel, double abs) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    if (!(std::fabs(x - y) <= abs + rel * std::max(std::fabs(x), std::fabs(y)))) return false;
  }
  return true;
}

std::string shape_name(const MaxPool2dShape& s) {
  return std::to_string(s.n) + "x" + std::to_string(s.c) + "x" + std::to_string(s.h_in) + "x" +
         std::to_string(s.w_in);
}
std::string shape_name(const BatchNormShape& s) {
  return std::to_string(s.n) + "x" + std::to_string(s.c) + "x" + std::to_string(s.spatial);
}

// ---- max pooling ------------------------------------------------------------------------------

struct PoolProblem {
  MaxPool2dShape s;
  size_t in, out;
  DeviceArray<float> x, y, dy, dx;
  DeviceArray<int32_t> argmax;
  explicit PoolProblem(const MaxPool2dShape& shape)
      : s(shape),
        in(size_t(shape.n * shape.c * shape.h_in * shape.w_in)),
        out(size_t(shape.n * shape.c * shape.h_out * shape.w_out)),
        x(in), y(out), dy(out), dx(in), argmax(out) {
    x.upload(lcg_values(in, 1, -1.0f, 1.0f));
    dy.upload(lcg_values(out, 2, -1.0f, 1.0f));
    forward();  // y and argmax for the backward rows
  }
  void forward() { cuda::max_pool2d_forward(s, x.get(), y.get(), argmax.get(), nullptr); }
  void backward() {
    cuda::max_pool2d_backward(s, dy.get(), argmax.get(), dx.get(), GradMode::Overwrite, nullptr);
  }
#if defined(POLYTASK_WITH_CUDNN)
  void cudnn_forward() { kernels::vendor::cudnn_max_pool2d_forward(cudnn(), s, x.get(), y.get(), nullptr); }
  void cudnn_backward() {
    kernels::vendor::cudnn_max_pool2d_backward(cudnn(), s, x.get(), y.get(), dy.get(), dx.get(),
                                               GradMode::Overwrite, nullptr);
  }
#endif
  double our_bytes() const { return 4.0 * double(in) + 8.0 * double(out); }
};

// Ours against the CPU reference, bit for bit: forward's y and argmax, then backward's dx.
bool pool_agrees(PoolProblem& p, std::string& why) {
  const std::vector<float> x = p.x.download(), dy = p.dy.download();
  std::vector<float> y(p.out), dx(p.in);
  std::vector<int32_t> argmax(p.out);
  kernels::cpu::max_pool2d_forward<float>(p.s, x.data(), y.data(), argmax.data());
  kernels::cpu::max_pool2d_backward<float>(p.s, dy.data(), argmax.data(), dx.data(), GradMode::Overwrite);
  p.forward();
  p.backward();
  if (same_bits(p.y.download(), y) && same_bits(p.argmax.download(), argmax) && same_bits(p.dx.download(), dx))
    return true;
  why = "max_pool2d differs from the CPU reference";
  return false;
}

void bm_pool(benchmark::State& state, MaxPool2dShape s, bool backward, bool vendor) {
  if (skip_without_gpu(state)) return;
  PoolProblem p(s);
  const std::string row = std::string(backward ? "bwd/" : "fwd/") + (vendor ? "cudnn/" : "ours/") + shape_name(s);
  std::string why;
  if (!vendor && first_time(row) && !check(state, pool_agrees(p, why), why)) return;
  const std::function<void()> ours = [&] { backward ? p.backward() : p.forward(); };
#if defined(POLYTASK_WITH_CUDNN)
  const std::function<void()> theirs = [&] { backward ? p.cudnn_backward() : p.cudnn_forward(); };
  time_with_events(state, vendor ? theirs : ours);
  if (vendor) {
    report(state, backward ? 8.0 * double(p.in) + 8.0 * double(p.out) : 4.0 * double(p.in) + 4.0 * double(p.out));
    return;
  }
  report(state, p.our_bytes());
  report_time_ratio(state, "time_vs_cudnn", ours, theirs);
#else
  time_with_events(state, ours);
  report(state, p.our_bytes());
#endif
}

// ---- batch normalisation ----------------------------------------------------------------------

struct BatchNormProblem {
  BatchNormShape s;
  size_t count, channels;
  DeviceArray<float> x, y, dy, dx, gamma, beta, save_mean, save_invstd, running_mean, running_var;
  DeviceArray<float> dgamma, dbeta;
  DeviceArray<double> partials;
  explicit BatchNormProblem(const BatchNormShape& shape)
      : s(shape),
        count(size_t(shape.n * shape.c * shape.spatial)),
        channels(size_t(shape.c)),
        x(count), y(count), dy(count), dx(count), gamma(channels), beta(channels),
        save_mean(channels), save_invstd(channels), running_mean(channels), running_var(channels),
        dgamma(channels), dbeta(channels), partials(size_t(cuda::kReduceWorkspace)) {
    x.upload(lcg_values(count, 3, -2.0f, 2.0f));
    dy.upload(lcg_values(count, 4, -1.0f, 1.0f));
    gamma.upload(lcg_values(channels, 5, 0.5f, 1.5f));
    beta.upload(lcg_values(channels, 6, -0.5f, 0.5f));
    running_mean.upload(std::vector<float>(channels, 0.0f));
    running_var.upload(std::vector<float>(channels, 1.0f));
    forward();  // saved statistics for the backward rows
  }
  void forward() {
    cuda::batchnorm_forward_train(s, x.get(), gamma.get(), beta.get(), kEps, kMomentum, y.get(),
                                  save_mean.get(), save_invstd.get(), running_mean.get(),
                                  running_var.get(), partials.get(), nullptr);
  }
  void backward() {
    cuda::batchnorm_backward(s, x.get(), dy.get(), gamma.get(), save_mean.get(), save_invstd.get(),
                             dx.get(), dgamma.get(), dbeta.get(), GradMode::Overwrite,
                             partials.get(), nullptr);
  }
#if defined(POLYTASK_WITH_CUDNN)
  // cuDNN writes its own saved statistics into the same buffers (the same values within float
  // rounding), so backward rows stay consistent whichever ran last.
  void cudnn_forward() {
    kernels::vendor::cudnn_batchnorm_forward_train(cudnn(), s, x.get(), gamma.get(), beta.get(), kEps,
                                                   kMomentum, y.get(), save_mean.get(),
                                                   save_invstd.get(), running_mean.get(),
                                                   running_var.get(), nullptr);
  }
  void cudnn_backward() {
    kernels::vendor::cudnn_batchnorm_backward(cudnn(), s, x.get(), dy.get(), gamma.get(),
                                              save_mean.get(), save_invstd.get(), kEps, dx.get(),
                                              dgamma.get(), dbeta.get(), GradMode::Overwrite, nullptr);
  }
#endif
};

// Ours against the CPU reference within the test suite's tolerances (tests/cuda/
// test_batchnorm.cpp: 2 float ulps, plus absolute slack for cancellation), loosened 4x.
bool batchnorm_agrees(BatchNormProblem& p, std::string& why) {
  const std::vector<float> x = p.x.download(), dy = p.dy.download();
  const std::vector<float> gamma = p.gamma.download(), beta = p.beta.download();
  std::vector<float> y(p.count), mean(p.channels), invstd(p.channels);
  std::vector<float> running_mean(p.channels, 0.0f), running_var(p.channels, 1.0f);
  kernels::cpu::batchnorm_forward_train<float>(p.s, x.data(), gamma.data(), beta.data(), kEps, kMomentum,
                                               y.data(), mean.data(), invstd.data(),
                                               running_mean.data(), running_var.data());
  std::vector<float> dx(p.count), dgamma(p.channels), dbeta(p.channels);
  kernels::cpu::batchnorm_backward<float>(p.s, x.data(), dy.data(), gamma.data(), mean.data(),
                                          invstd.data(), dx.data(), dgamma.data(), dbeta.data(),
                                          GradMode::Overwrite);
  p.running_mean.upload(std::vector<float>(p.channels, 0.0f));
  p.running_var.upload(std::vector<float>(p.channels, 1.0f));
  p.forward();
  const bool forward_ok = within(p.y.download(), y, 1e-6, 4e-9) &&
                          within(p.save_mean.download(), mean, 1e-6, 4e-9) &&
                          within(p.save_invstd.download(), invstd, 1e-6, 0.0) &&
                          within(p.running_var.download(), running_var, 1e-6, 4e-9);
  p.save_mean.upload(mean);  // backward from the CPU's statistics, as the tests do
  p.save_invstd.upload(invstd);
  p.backward();
  const double param_abs = 4e-14 * double(p.s.n * p.s.spatial) + 4e-9;
  const bool backward_ok = within(p.dx.download(), dx, 1e-6, 4e-9) &&
                           within(p.dgamma.download(), dgamma, 1e-6, param_abs) &&
                           within(p.dbeta.download(), dbeta, 1e-6, param_abs);
  if (forward_ok && backward_ok) return true;
  why = std::string("batchnorm ") + (forward_ok ? "backward" : "forward") + " differs from the CPU reference";
  return false;
}

void bm_batchnorm(benchmark::State& state, BatchNormShape s, bool backward, bool vendor) {
  if (skip_without_gpu(state)) return;
  BatchNormProblem p(s);
  const std::string row = std::string(backward ? "bwd/" : "fwd/") + (vendor ? "cudnn/" : "ours/") + shape_name(s);
  std::string why;
  if (!vendor && first_time(row) && !check(state, batchnorm_agrees(p, why), why)) return;
  const double bytes = (backward ? 20.0 : 12.0) * double(p.count);
  const std::function<void()> ours = [&] { backward ? p.backward() : p.forward(); };
#if defined(POLYTASK_WITH_CUDNN)
  const std::function<void()> theirs = [&] { backward ? p.cudnn_backward() : p.cudnn_forward(); };
  time_with_events(state, vendor ? theirs : ours);
  report(state, bytes);
  if (!vendor) report_time_ratio(state, "time_vs_cudnn", ours, theirs);
#else
  time_with_events(state, ours);
  report(state, bytes);
#endif
}

// ---- dropout ------------------------------------------------------------------------------------

void bm_dropout(benchmark::State& state, int64_t n, bool copy) {
  if (skip_without_gpu(state)) return;
  DeviceArray<float> x{size_t(n)}, y{size_t(n)};
  const std::vector<float> host = lcg_values(size_t(n), 7, -1.0f, 1.0f);
  x.upload(host);
  const std::function<void()> ours = [&] {
    cuda::dropout_forward(n, kDropoutRate, kDropoutSeed, kDropoutStream, 0, x.get(), y.get(),
                          nullptr);
  };
  const std::function<void()> baseline = [&] {
    POLYTASK_CUDA_CHECK(cudaMemcpyAsync(y.get(), x.get(), size_t(n) * sizeof(float),
                                        cudaMemcpyDeviceToDevice, nullptr));
  };
  if (!copy && first_time("dropout/" + std::to_string(n))) {
    std::vector<float> expected(static_cast<size_t>(n));
    kernels::cpu::dropout_forward<float>(n, kDropoutRate, kDropoutSeed, kDropoutStream, 0,
                                         host.data(), expected.data());
    ours();
    if (!check(state, same_bits(y.download(), expected), "dropout mask differs from the CPU's")) return;
  }
  time_with_events(state, copy ? baseline : ours);
  report(state, 8.0 * double(n));
  if (!copy) report_time_ratio(state, "time_vs_copy", ours, baseline);
}

// ---- registration -------------------------------------------------------------------------------

void register_all() {
  auto add = [](const std::string& name, auto&& fn, auto... args) {
    benchmark::RegisterBenchmark(("trunk/" + name).c_str(), fn, args...)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };
  for (const int64_t n : {128, 1024}) {
    for (const MaxPool2dShape& s : {kernels::max_pool2d_shape(n, 32, 26, 26, 2, 2, 2, 2),
                                    kernels::max_pool2d_shape(n, 64, 11, 11, 2, 2, 2, 2),
                                    kernels::max_pool2d_shape(n, 32, 32, 32, 2, 2, 2, 2)})
      for (const bool backward : {false, true})
        for (const bool vendor : {false, true}) {
          if (vendor && !kHaveCudnn) continue;
          add(std::string(backward ? "max_pool_bwd/" : "max_pool_fwd/") + (vendor ? "cudnn/" : "ours/") +
                  shape_name(s),
              bm_pool, s, backward, vendor);
        }
    for (const BatchNormShape& s : {BatchNormShape{n, 32, 26 * 26}, BatchNormShape{n, 64, 11 * 11},
                                    BatchNormShape{n, 32, 32 * 32}, BatchNormShape{n, 128, 1}})
      for (const bool backward : {false, true})
        for (const bool vendor : {false, true}) {
          if (vendor && !kHaveCudnn) continue;
          add(std::string(backward ? "bn_bwd/" : "bn_train_fwd/") + (vendor ? "cudnn/" : "ours/") +
                  shape_name(s),
              bm_batchnorm, s, backward, vendor);
        }
  }
  for (const int64_t n : {int64_t(128 * 64), int64_t(1024 * 64), int64_t(1) << 24}) {
    add("dropout_fwd/ours/" + std::to_string(n), bm_dropout, n, false);
    add("dropout_fwd/copy/" + std::to_string(n), bm_dropout, n, true);
  }
}

}  // namespace
}  // namespace polytask::bench

int main(int argc, char** argv) {
  return polytask::bench::run_benchmarks(argc, argv, polytask::bench::register_all);
}
