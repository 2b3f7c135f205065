// The memory-bound CUDA kernels of a dense training step (kernels/cuda/{elementwise,loss,
// optimizer}.cu) against a cudaMemcpyAsync device-to-device copy of the same run: the copy is
// the practical floor for a kernel that streams bytes, so `pct_of_copy` says how close each
// kernel comes to it. Timed with CUDA events (Google Benchmark manual time).
//
// Rows: memory/<op>/<size>. Counters:
//   bytes/s       the compulsory bytes below over the measured time;
//   pct_of_copy   that rate as a percentage of the copy baseline's rate (a 256 MiB copy, timed
//                 once per process, before the first row), so < 100 means slower than a copy;
//   floor_us      the bytes at the H100 SXM's HBM3 peak (3.35 TB/s). A copy reaches ~90% of it.
//
// Bytes per call (float and int32 = 4 bytes; R rows, C classes, n elements) and the floor:
//
//   op                          bytes per call                         size         floor
//   copy                        8n (read, write)                       2^20         2.5 µs
//                                                                      2^26 (256 MiB) 160 µs
//   relu_forward                8n (read x, write y)                   2^20         2.5 µs
//                                                                      2^24         40 µs
//   scale_grad, Accumulate      12n (read dy and dx, write dx)         2^20         3.8 µs
//                                                                      2^24         60 µs
//   softmax CE forward          fwd: read logits, labels; write probs  128x10       6.4 ns
//     + backward (labels)       bwd: read probs, labels; write dlogits 1024x10      51 ns
//                               = 16RC + 8R                            65536x10     3.3 µs
//                                                                      65536x1000   313 µs
//   mse forward + backward      fwd 8n (read both); bwd 12n = 20n      128 (128x1)  0.8 ns
//                                                                      2^20         6.3 µs
//                                                                      2^24         100 µs
//   adam_update                 28n (read p, g, m, v; write p, m, v)   1e5          0.84 µs
//                                                                      1e6          8.4 µs
//                                                                      1e7          84 µs
//
// A launch costs ~2-4 µs of fixed overhead (softmax CE and mse are 2-3 launches: forward, the
// reduction's second pass when the batch spans several blocks, backward), which dominates every
// row whose floor is below ~10 µs: the workload's heads (128x10, 128x1) are launch-bound, and
// their pct_of_copy is small by construction. The rows that show the kernels' streaming
// efficiency are the large ones.
//
// Caches: each row rotates through enough copies of its buffers to span ≥ 200 MB (4x the 50 MB
// L2), at most 64 copies, so the larger rows stream from HBM rather than hit in L2; the small
// ones stay in L2 either way, as they would in a training step.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/gpu/gpu_bench.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/optimizer.h"
#include "kernels/reduce.h"

namespace polytask::bench {
namespace {

namespace cuda = kernels::cuda;
using kernels::GradMode;

constexpr double kRotationBytes = 200e6;  // 4x the H100's 50 MB L2
constexpr size_t kMaxCopies = 64;

template <class T>
std::vector<T> download(const T* src, size_t count) {
  std::vector<T> host(count);
  POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
  POLYTASK_CUDA_CHECK(cudaMemcpy(host.data(), src, count * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

// The copy baseline in bytes/s (read + write): a 256 MiB device-to-device cudaMemcpyAsync,
// measured once per process (20 copies after a warm-up) and shared by every row's ratio.
double copy_bandwidth() {
  static const double bandwidth = [] {
    const size_t n = size_t(1) << 26;
    DeviceArray<float> a(n), b(n);
    POLYTASK_CUDA_CHECK(cudaMemset(a.get(), 0, n * sizeof(float)));
    const double ms = mean_ms(
        [&] {
          POLYTASK_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), n * sizeof(float),
                                              cudaMemcpyDeviceToDevice, nullptr));
        },
        20);
    return 2.0 * double(n * sizeof(float)) / (ms * 1e-3);
  }();
  return bandwidth;
}

void report(benchmark::State& state, double bytes_per_call) {
  set_rates(state, 0, bytes_per_call);
  // A rate counter is divided by the (manual) time: (bytes / copy rate)·iterations / seconds
  // = measured rate / copy rate.
  state.counters["pct_of_copy"] = benchmark::Counter(100.0 * bytes_per_call / copy_bandwidth(),
                                                     benchmark::Counter::kIsIterationInvariantRate);
  state.counters["floor_us"] = bytes_per_call / kHbmBytes * 1e6;
}

// Copies of a row's buffers to rotate through (see "Caches" above).
template <class Buffers>
class Rotation {
 public:
  template <class Make>
  Rotation(double bytes_per_copy, Make make) {
    const size_t copies =
        std::clamp<size_t>(size_t(std::ceil(kRotationBytes / bytes_per_copy)), 1, kMaxCopies);
    for (size_t i = 0; i < copies; ++i) copies_.push_back(make());
  }
  Buffers& first() { return *copies_.front(); }
  Buffers& next() { return *copies_[turn_++ % copies_.size()]; }

 private:
  std::vector<std::unique_ptr<Buffers>> copies_;
  size_t turn_ = 0;
};

// Validation happens once per row (Google Benchmark calls a row's function several times while
// it sizes the iteration count); a row is its op and its arguments.
bool first_time(const std::string& op, int64_t a, int64_t b = 0) {
  static std::set<std::string> seen;
  return seen.insert(op + "/" + std::to_string(a) + "x" + std::to_string(b)).second;
}

bool check(benchmark::State& state, bool ok, const std::string& what) {
  if (!ok) state.SkipWithError(("validation failed: " + what).c_str());
  return ok;
}

// ---- copy, relu, scale_grad ---------------------------------------------------------------------

struct TwoArrays {
  DeviceArray<float> x, y;
  explicit TwoArrays(size_t n) : x(n), y(n) {
    x.upload(lcg_values(n, 1, -1.0f, 1.0f));
    y.upload(lcg_values(n, 2, -1.0f, 1.0f));
  }
};

void bm_copy(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const size_t n = size_t(state.range(0));
  const double bytes = 8.0 * double(n);
  copy_bandwidth();
  Rotation<TwoArrays> rotation(bytes, [&] { return std::make_unique<TwoArrays>(n); });
  time_with_events(state, [&] {
    TwoArrays& a = rotation.next();
    POLYTASK_CUDA_CHECK(cudaMemcpyAsync(a.y.get(), a.x.get(), n * sizeof(float),
                                        cudaMemcpyDeviceToDevice, nullptr));
  });
  report(state, bytes);
}

void bm_relu(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0);
  const double bytes = 8.0 * double(n);
  copy_bandwidth();
  Rotation<TwoArrays> rotation(bytes, [&] { return std::make_unique<TwoArrays>(size_t(n)); });
  if (first_time("relu", n)) {
    const size_t prefix = std::min<size_t>(size_t(n), 1 << 20);
    TwoArrays& a = rotation.first();
    cuda::relu_forward(n, a.x.get(), a.y.get(), nullptr);
    const std::vector<float> x = download(a.x.get(), prefix), y = download(a.y.get(), prefix);
    bool ok = true;
    for (size_t i = 0; i < prefix; ++i) ok = ok && y[i] == (x[i] < 0.0f ? 0.0f : x[i]);
    if (!check(state, ok, "relu_forward differs from max(x, 0)")) return;
  }
  time_with_events(state, [&] {
    TwoArrays& a = rotation.next();
    cuda::relu_forward(n, a.x.get(), a.y.get(), nullptr);
  });
  report(state, bytes);
}

void bm_scale_grad_accumulate(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0);
  const double bytes = 12.0 * double(n);
  copy_bandwidth();
  Rotation<TwoArrays> rotation(8.0 * double(n),
                               [&] { return std::make_unique<TwoArrays>(size_t(n)); });
  if (first_time("scale_grad", n)) {
    const size_t prefix = std::min<size_t>(size_t(n), 1 << 20);
    TwoArrays& a = rotation.first();
    const std::vector<float> before = download(a.y.get(), prefix), dy = download(a.x.get(), prefix);
    cuda::scale_grad(n, 0.5f, a.x.get(), a.y.get(), GradMode::Accumulate, nullptr);
    const std::vector<float> after = download(a.y.get(), prefix);
    bool ok = true;
    for (size_t i = 0; i < prefix; ++i)
      ok = ok && std::fabs(after[i] - (before[i] + 0.5f * dy[i])) <= 2.4e-7f;
    if (!check(state, ok, "scale_grad differs from dx + 0.5·dy")) return;
  }
  time_with_events(state, [&] {
    TwoArrays& a = rotation.next();
    cuda::scale_grad(n, 0.5f, a.x.get(), a.y.get(), GradMode::Accumulate, nullptr);
  });
  report(state, bytes);
}

// ---- softmax cross-entropy ----------------------------------------------------------------------

struct SoftmaxBuffers {
  int64_t rows, classes;
  DeviceArray<float> logits, probs, dlogits, loss;
  DeviceArray<int32_t> labels;
  DeviceArray<int> bad_label_row;
  DeviceArray<double> partials;
  SoftmaxBuffers(int64_t r, int64_t c)
      : rows(r),
        classes(c),
        logits(size_t(r * c)),
        probs(size_t(r * c)),
        dlogits(size_t(r * c)),
        loss(1),
        labels(size_t(r)),
        bad_label_row(1),
        partials(size_t(cuda::kReduceWorkspace)) {
    logits.upload(lcg_values(size_t(r * c), 3, -4.0f, 4.0f));
    std::vector<int32_t> host(static_cast<size_t>(r));
    for (size_t i = 0; i < host.size(); ++i) host[i] = int32_t((i * 7919) % size_t(c));
    labels.upload(host);
  }
  void step() {
    cuda::softmax_cross_entropy_forward(rows, classes, logits.get(), labels.get(), probs.get(),
                                        loss.get(), bad_label_row.get(), partials.get(), nullptr);
    cuda::softmax_cross_entropy_backward(rows, classes, probs.get(), labels.get(), 1.0f,
                                         dlogits.get(), GradMode::Overwrite, nullptr);
  }
};

// The CPU reference's loss on the benchmark's own inputs: the device loss must match it within
// 1e-5 relative (the test suite's tolerance) and report no bad label.
bool softmax_agrees(SoftmaxBuffers& b, std::string& why) {
  b.step();
  const size_t count = size_t(b.rows * b.classes);
  const std::vector<float> logits = download(b.logits.get(), count);
  const std::vector<int32_t> labels = download(b.labels.get(), size_t(b.rows));
  std::vector<float> probs(count);
  float expected = 0.0f;
  kernels::cpu::softmax_cross_entropy_forward<float>(b.rows, b.classes, logits.data(),
                                                     labels.data(), probs.data(), &expected);
  const float loss = download(b.loss.get(), 1)[0];
  const int bad = download(b.bad_label_row.get(), 1)[0];
  if (std::fabs(double(loss) - double(expected)) <= 1e-5 * std::fabs(double(expected)) && bad == -1)
    return true;
  why = "loss " + std::to_string(loss) + " vs CPU " + std::to_string(expected) + ", bad row " +
        std::to_string(bad);
  return false;
}

void bm_softmax_ce(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t rows = state.range(0), classes = state.range(1);
  const double bytes = 16.0 * double(rows * classes) + 8.0 * double(rows);
  copy_bandwidth();
  Rotation<SoftmaxBuffers> rotation(12.0 * double(rows * classes) + 4.0 * double(rows), [&] {
    return std::make_unique<SoftmaxBuffers>(rows, classes);
  });
  std::string why;
  if (first_time("softmax", rows, classes) &&
      !check(state, softmax_agrees(rotation.first(), why), why))
    return;
  time_with_events(state, [&] { rotation.next().step(); });
  report(state, bytes);
}

// ---- mse ----------------------------------------------------------------------------------------

struct MseBuffers {
  int64_t count;
  DeviceArray<float> pred, target, dpred, loss;
  DeviceArray<double> partials;
  explicit MseBuffers(int64_t n)
      : count(n),
        pred(size_t(n)),
        target(size_t(n)),
        dpred(size_t(n)),
        loss(1),
        partials(size_t(cuda::kReduceWorkspace)) {
    pred.upload(lcg_values(size_t(n), 4, -2.0f, 2.0f));
    target.upload(lcg_values(size_t(n), 5, -2.0f, 2.0f));
  }
  void step() {
    cuda::mse_forward(count, pred.get(), target.get(), loss.get(), partials.get(), nullptr);
    cuda::mse_backward(count, pred.get(), target.get(), 1.0f, dpred.get(), GradMode::Overwrite,
                       nullptr);
  }
};

void bm_mse(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0);
  const double bytes = 20.0 * double(n);
  copy_bandwidth();
  Rotation<MseBuffers> rotation(12.0 * double(n), [&] { return std::make_unique<MseBuffers>(n); });
  if (first_time("mse", n)) {
    MseBuffers& b = rotation.first();
    b.step();
    const std::vector<float> pred = download(b.pred.get(), size_t(n)),
                             target = download(b.target.get(), size_t(n));
    float expected = 0.0f;
    kernels::cpu::mse_forward<float>(n, pred.data(), target.data(), &expected);
    const float loss = download(b.loss.get(), 1)[0];
    if (!check(state, std::fabs(double(loss) - double(expected)) <= 2.4e-7 * double(expected),
               "mse loss " + std::to_string(loss) + " vs CPU " + std::to_string(expected)))
      return;
  }
  time_with_events(state, [&] { rotation.next().step(); });
  report(state, bytes);
}

// ---- adam ---------------------------------------------------------------------------------------

struct AdamBuffers {
  int64_t count;
  DeviceArray<float> param, grad, m, v;
  explicit AdamBuffers(int64_t n)
      : count(n), param(size_t(n)), grad(size_t(n)), m(size_t(n)), v(size_t(n)) {
    param.upload(lcg_values(size_t(n), 6, -1.0f, 1.0f));
    grad.upload(lcg_values(size_t(n), 7, -1.0f, 1.0f));
    POLYTASK_CUDA_CHECK(cudaMemset(m.get(), 0, size_t(n) * sizeof(float)));
    POLYTASK_CUDA_CHECK(cudaMemset(v.get(), 0, size_t(n) * sizeof(float)));
  }
};

void bm_adam(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0);
  const double bytes = 28.0 * double(n);
  copy_bandwidth();
  Rotation<AdamBuffers> rotation(16.0 * double(n),
                                 [&] { return std::make_unique<AdamBuffers>(n); });
  kernels::AdamParams params;
  params.step = 10;
  if (first_time("adam", n)) {
    AdamBuffers& b = rotation.first();
    const size_t prefix = std::min<size_t>(size_t(n), 1 << 20);
    std::vector<float> param = download(b.param.get(), prefix),
                       grad = download(b.grad.get(), prefix);
    std::vector<float> m(prefix, 0.0f), v(prefix, 0.0f);
    kernels::cpu::adam_update<float>(int64_t(prefix), params, param.data(), grad.data(), m.data(),
                                     v.data());
    cuda::adam_update(n, params, b.param.get(), b.grad.get(), b.m.get(), b.v.get(), nullptr);
    const std::vector<float> got = download(b.param.get(), prefix);
    bool ok = true;
    for (size_t i = 0; i < prefix; ++i)
      ok = ok && std::fabs(got[i] - param[i]) <= 1e-6f + 2e-6f * std::fabs(param[i]);
    if (!check(state, ok, "adam_update differs from the CPU reference")) return;
  }
  time_with_events(state, [&] {
    AdamBuffers& b = rotation.next();
    cuda::adam_update(n, params, b.param.get(), b.grad.get(), b.m.get(), b.v.get(), nullptr);
  });
  report(state, bytes);
}

void register_all() {
  auto add = [](const std::string& name, void (*fn)(benchmark::State&)) {
    return benchmark::RegisterBenchmark(("memory/" + name).c_str(), fn)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };
  add("copy", bm_copy)->Arg(1 << 20)->Arg(1 << 24)->Arg(1 << 26);
  add("relu_forward", bm_relu)->Arg(1 << 20)->Arg(1 << 24)->Arg(1 << 26);
  add("scale_grad_accumulate", bm_scale_grad_accumulate)->Arg(1 << 20)->Arg(1 << 24);
  add("softmax_ce_fwd_bwd", bm_softmax_ce)
      ->Args({128, 10})
      ->Args({1024, 10})
      ->Args({65536, 10})
      ->Args({65536, 1000});
  add("mse_fwd_bwd", bm_mse)->Arg(128)->Arg(1 << 20)->Arg(1 << 24);
  add("adam_update", bm_adam)->Arg(100000)->Arg(1000000)->Arg(10000000);
}

}  // namespace
}  // namespace polytask::bench

int main(int argc, char** argv) {
  return polytask::bench::run_benchmarks(argc, argv, polytask::bench::register_all);
}
