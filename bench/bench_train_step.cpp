// CPU training-step benchmark of the reference workload, the "mnist-digit-parity" preset:
// Conv32-3x3-ReLU -> MaxPool2 -> Conv64-3x3-ReLU -> MaxPool2 -> Flatten -> Dense128-ReLU ->
// heads Dense10 (digit, weight 1.0) and Dense2 (parity, weight 0.5), float32, 28x28x1 inputs.
//
// Benchmarks (select with --benchmark_filter=REGEX):
//   BM_TrainStep/B        one optimiser step as Trainer::fit runs it: gather a batch of B rows
//                         of a synthetic data set -> forward -> both losses -> backward -> Adam.
//                         Counters: images (per second), sec_per_epoch (54,000 images, the
//                         issue's target) and FLOP (per second, GEMM-like work of the step).
//   BM_TrainStepFashion/B the same step of "fashion-type-brightness" (BatchNorm after each
//                         conv, Dense64-Dropout0.3 heads: Dense10 softmax, Dense1 MSE).
//   BM_TrainStepPhases/B  the same step with each phase timed separately (ms per step) to see
//                         where the time goes; BM_Forward/B is inference only.
//   BM_Conv*, BM_Dense*   the kernels that dominate, at the workload's shapes, with FLOP/s;
//   BM_Pool*, BM_Relu*    the memory-bound layers between them, with bytes/s, so the kernel
//                         rows add up to (nearly) the whole step;
//   BM_BatchNorm*, BM_Dropout*, BM_Loss*, BM_Adam*  fashion-type-brightness's extra layers at
//                         its shapes, the heads' losses, and Adam over each preset's parameters.
//
// Timing discipline (design/STYLE.md, lesson 7): validate first (a finite loss; conv and dense
// outputs against a direct sum at sampled positions), warm up before timing, rotate inputs so
// repeats do not re-read an L2-hot buffer, wall-clock time (UseRealTime: the kernels run on
// OpenMP/OpenBLAS threads, so the main thread's CPU time would be wrong).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench/random_floats.h"
#include "datasets/labels.h"
#include "datasets/synthetic.h"
#include "engine/network.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/sgemm.h"
#include "kernels/dense.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/optimizer.h"
#include "kernels/pool2d.h"
#include "models/config.h"

namespace {

using polytask::Dataset;
using polytask::Network;
using polytask::NetworkOptions;
using polytask::Trainer;
using polytask::kernels::Conv2dShape;
using polytask::kernels::DenseShape;
using polytask::kernels::GradMode;
using polytask::kernels::Padding;
namespace cpu = polytask::kernels::cpu;
using Clock = std::chrono::steady_clock;

constexpr const char* kPreset = "mnist-digit-parity";
// The BatchNorm + Dropout preset (BM_TrainStepFashion): the same convolutions with BatchNorm
// before each ReLU, and heads Dense64-Dropout0.3 -> Dense10 (type) / Dense1 (brightness, MSE).
constexpr const char* kFashionPreset = "fashion-type-brightness";
// The epoch: 60,000 MNIST images less a 10 % validation split.
constexpr double kEpochImages = 54000;
constexpr int64_t kDataRows = 8192;  // synthetic rows the batches are gathered from
constexpr int kWarmupSteps = 5;
constexpr int kRotations = 4;  // kernel input copies cycled through between repeats

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_train_step: validation failed: %s\n", what.c_str());
  std::exit(1);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A preset as the CLI builds it (models/configs/<name>.toml) for 28x28 grey images.
struct Preset {
  explicit Preset(const char* name) : config(polytask::models::preset_config(name)) {}
  polytask::models::ModelConfig config;
  polytask::Model model = polytask::models::build_model(config, {{"image", {1, 28, 28}}});
};

// The synthetic data set with a target per task of `preset`, built once per preset (the same
// images for every benchmark).
const Dataset& data(const char* preset = kPreset) {
  static std::map<std::string, Dataset> built;
  auto it = built.find(preset);
  if (it == built.end()) {
    Dataset synthetic = polytask::datasets::synthetic_digits(kDataRows, 1);
    polytask::datasets::attach_task_targets(synthetic, polytask::models::preset_config(preset).tasks, 1);
    it = built.emplace(preset, std::move(synthetic)).first;
  }
  return it->second;
}

// A shuffled row order the steps walk through, so every step gathers different rows.
std::vector<int64_t> shuffled_rows(uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(kDataRows));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

struct Workload {
  explicit Workload(int64_t batch, const char* preset_name = kPreset)
      : name(preset_name), preset(preset_name) {
    NetworkOptions options;
    options.max_batch = batch;
    options.seed = 1;
    network = std::make_unique<Network>(preset.model, preset.config.tasks, options);
    trainer = std::make_unique<Trainer>(*network, adam);
    order = shuffled_rows(2);
  }
  // Rows of the next batch (wrapping around the shuffled order).
  const int64_t* next_batch(int64_t batch) {
    if (cursor + batch > kDataRows) cursor = 0;
    const int64_t* rows = order.data() + cursor;
    cursor += batch;
    return rows;
  }
  // Copies the rows into the network's input and target buffers (what Trainer::load does).
  void load(const int64_t* rows, int64_t n) {
    auto gather = [&](const polytask::Tensor& src, const polytask::Tensor& dst) {
      const size_t row = size_t(src.numel() / src.dim(0)) * polytask::dtype_size(src.dtype());
      const auto* from = static_cast<const char*>(src.raw());
      auto* to = static_cast<char*>(dst.raw());
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(to + size_t(i) * row, from + size_t(rows[i]) * row, row);
    };
    gather(data(name).input("image"), network->input_buffer(0));
    for (size_t t = 0; t < network->tasks().size(); ++t)
      gather(data(name).target(network->tasks()[t].name), network->target_buffer(t));
  }

  const char* name;
  Preset preset;
  polytask::Adam adam;  // lr 1e-3, betas 0.9/0.999, eps 1e-7
  std::unique_ptr<Network> network;
  std::unique_ptr<Trainer> trainer;
  std::vector<int64_t> order;
  int64_t cursor = 0;
};

// Registration settings: batch 128, wall-clock time (the work runs on OpenMP/OpenBLAS threads).
void batch128_ms(benchmark::internal::Benchmark* b) {
  b->Arg(128)->UseRealTime()->Unit(benchmark::kMillisecond);
}
void batch128_us(benchmark::internal::Benchmark* b) {
  b->Arg(128)->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void add_epoch_counters(benchmark::State& state, int64_t batch) {
  const double images = double(state.iterations()) * double(batch);
  state.counters["images"] = benchmark::Counter(images, benchmark::Counter::kIsRate);
  // kIsRate | kInvert gives seconds / value: seconds per (images / 54,000) epochs.
  state.counters["sec_per_epoch"] = benchmark::Counter(
      images / kEpochImages, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// This machine's float FMA peak with the active kernels and every thread probing at once
// (cpu::measured_peak_flops), measured once: the floor each FLOP rate is set against.
double measured_peak() {
  static const double peak =
      cpu::measured_peak_flops(cpu::active_micro_kernels(), omp_get_max_threads());
  return peak;
}

void set_gflops(benchmark::State& state, double flops_per_call) {
  // Shown with SI prefixes: "FLOP=12.3G/s", "GFLOP_per_call=0.57".
  state.counters["FLOP"] =
      benchmark::Counter(flops_per_call * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["GFLOP_per_call"] = 1e-9 * flops_per_call;
}

// The two convolutions of the preset at batch n: 1->32 channels on 28x28 and 32->64 on 13x13.
Conv2dShape conv_shape(int layer, int64_t n) {
  return layer == 1
             ? polytask::kernels::conv2d_shape(n, 1, 28, 28, 32, 3, 3, 1, 1, Padding::Valid)
             : polytask::kernels::conv2d_shape(n, 32, 13, 13, 64, 3, 3, 1, 1, Padding::Valid);
}

// Multiply-add FLOPs (x2) of one training step at batch n, GEMM-like work only (ReLU, pooling,
// softmax and Adam are a few MFLOP): conv1 forward + backward-filter (the image needs no
// gradient), conv2, Dense128 and both heads forward + backward-data + backward-filter. The
// heads are Dense10 + Dense2 (mnist-digit-parity) or Dense64-Dense10 + Dense64-Dense1
// (fashion-type-brightness); BatchNorm and Dropout are memory-bound and not counted.
double train_step_flops(int64_t n, const char* preset = kPreset) {
  const double heads = std::string(preset) == kFashionPreset
                           ? 2.0 * 128.0 * 64.0 + 64.0 * 10.0 + 64.0 * 1.0
                           : 128.0 * 10.0 + 128.0 * 2.0;
  const double dense = 2.0 * double(n) * (1600.0 * 128.0 + heads);
  return 2.0 * conv_shape(1, n).forward_flops() + 3.0 * conv_shape(2, n).forward_flops() +
         3.0 * dense;
}

// ---------------------------------------------------------------- the full training step

void train_step(benchmark::State& state, const char* preset) {
  const int64_t batch = state.range(0);
  Workload w(batch, preset);
  const Dataset& d = data(preset);
  double first_loss = 0, loss = 0;
  for (int i = 0; i < kWarmupSteps; ++i) {
    loss = w.trainer->train_step(d, w.next_batch(batch), batch);  // throws on a non-finite loss
    if (i == 0) first_loss = loss;
  }
  if (!std::isfinite(loss)) die("training loss is not finite after warm-up");
  const auto start = Clock::now();
  for (auto _ : state) {
    loss = w.trainer->train_step(d, w.next_batch(batch), batch);
    benchmark::DoNotOptimize(loss);
  }
  const double seconds = seconds_since(start);
  add_epoch_counters(state, batch);
  set_gflops(state, train_step_flops(batch, preset));
  // The step's rate over the machine's measured peak (context: peak_gflops): the distance to
  // the floor.
  state.counters["of_peak"] =
      train_step_flops(batch, preset) * double(state.iterations()) / seconds / measured_peak();
  state.counters["loss_first"] = first_loss;
  state.counters["loss_last"] = loss;
}
void BM_TrainStep(benchmark::State& state) { train_step(state, kPreset); }
BENCHMARK(BM_TrainStep)->Arg(128)->Arg(32)->Arg(256)->UseRealTime()->Unit(benchmark::kMillisecond);
// The same step of fashion-type-brightness (BatchNorm, Dropout, an MSE head), batch 128.
void BM_TrainStepFashion(benchmark::State& state) { train_step(state, kFashionPreset); }
BENCHMARK(BM_TrainStepFashion)->Apply(batch128_ms);

// The same step with its phases timed one by one (ms per step, averaged over iterations).
void BM_TrainStepPhases(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Workload w(batch);
  for (int i = 0; i < kWarmupSteps; ++i) w.trainer->train_step(data(), w.next_batch(batch), batch);
  double gather = 0, forward = 0, backward = 0, adam = 0;
  for (auto _ : state) {
    auto t = Clock::now();
    w.load(w.next_batch(batch), batch);
    gather += seconds_since(t);
    t = Clock::now();
    w.network->forward(batch, /*training=*/true);
    forward += seconds_since(t);
    t = Clock::now();
    w.network->backward();
    backward += seconds_since(t);
    t = Clock::now();
    w.adam.step(w.network->parameters());
    adam += seconds_since(t);
  }
  const auto avg_ms = [&](double s) {
    return benchmark::Counter(1e3 * s, benchmark::Counter::kAvgIterations);
  };
  state.counters["gather_ms"] = avg_ms(gather);
  state.counters["forward_ms"] = avg_ms(forward);
  state.counters["backward_ms"] = avg_ms(backward);
  state.counters["adam_ms"] = avg_ms(adam);
  add_epoch_counters(state, batch);
}
BENCHMARK(BM_TrainStepPhases)->Apply(batch128_ms);

// Inference forward only (no losses, no dropout/batch statistics).
void BM_Forward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Workload w(batch);
  w.load(w.next_batch(batch), batch);
  for (int i = 0; i < kWarmupSteps; ++i)
    w.network->forward(batch, /*training=*/false, /*with_losses=*/false);
  for (auto _ : state) {
    w.load(w.next_batch(batch), batch);
    w.network->forward(batch, /*training=*/false, /*with_losses=*/false);
  }
  state.counters["images"] =
      benchmark::Counter(double(state.iterations()) * double(batch), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Forward)->Apply(batch128_ms);

// ---------------------------------------------------------------- kernels

using polytask::bench::random_floats;

struct ConvBuffers {
  explicit ConvBuffers(const Conv2dShape& s)
      : x_size(size_t(s.n * s.c_in * s.h_in * s.w_in)),
        y_size(size_t(s.n * s.c_out * s.h_out * s.w_out)),
        x(random_floats(x_size * kRotations, 11)),
        dy(random_floats(y_size * kRotations, 12)),
        w(random_floats(size_t(s.c_out * s.patch_size()), 13)),
        b(random_floats(size_t(s.c_out), 14)),
        y(y_size),
        dx(x_size),
        dw(w.size()),
        db(b.size()),
        workspace(size_t(cpu::conv2d_workspace_elements(s))) {}
  const float* x_at(int64_t i) const { return x.data() + size_t(i % kRotations) * x_size; }
  const float* dy_at(int64_t i) const { return dy.data() + size_t(i % kRotations) * y_size; }
  size_t x_size, y_size;
  std::vector<float> x, dy, w, b, y, dx, dw, db, workspace;
};

// Checks sampled outputs of the forward pass against a direct sum (validate before timing).
void validate_conv(const Conv2dShape& s, const ConvBuffers& buf) {
  std::vector<float> y(buf.y_size), ws(buf.workspace.size());
  cpu::conv2d_forward<float>(s, buf.x_at(0), buf.w.data(), buf.b.data(), y.data(), ws.data());
  std::mt19937_64 rng(3);
  for (int probe = 0; probe < 64; ++probe) {
    const int64_t n = int64_t(rng() % uint64_t(s.n)), co = int64_t(rng() % uint64_t(s.c_out));
    const int64_t oh = int64_t(rng() % uint64_t(s.h_out)), ow = int64_t(rng() % uint64_t(s.w_out));
    double ref = buf.b[size_t(co)];
    for (int64_t ci = 0; ci < s.c_in; ++ci)
      for (int64_t ki = 0; ki < s.k_h; ++ki)
        for (int64_t kj = 0; kj < s.k_w; ++kj)
          ref += double(buf.x_at(0)[((n * s.c_in + ci) * s.h_in + oh + ki) * s.w_in + ow + kj]) *
                 double(buf.w[size_t(((co * s.c_in + ci) * s.k_h + ki) * s.k_w + kj)]);
    const double got = y[size_t(((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow)];
    // float sums of up to 288 products of values in [-1, 1]: 1e-4 absolute + 1e-4 relative
    if (std::abs(got - ref) > 1e-4 + 1e-4 * std::abs(ref))
      die("conv2d_forward disagrees with a direct sum");
  }
}

enum class ConvPass { Forward, BackwardData, BackwardFilter };

void BM_Conv(benchmark::State& state, int layer, ConvPass pass) {
  const Conv2dShape s = conv_shape(layer, state.range(0));
  ConvBuffers buf(s);
  validate_conv(s, buf);
  int64_t i = 0;
  auto run = [&] {
    switch (pass) {
      case ConvPass::Forward:
        cpu::conv2d_forward<float>(s, buf.x_at(i), buf.w.data(), buf.b.data(), buf.y.data(),
                                   buf.workspace.data());
        break;
      case ConvPass::BackwardData:
        cpu::conv2d_backward_data<float>(s, buf.dy_at(i), buf.w.data(), buf.dx.data(),
                                         GradMode::Overwrite, buf.workspace.data());
        break;
      case ConvPass::BackwardFilter:
        cpu::conv2d_backward_filter<float>(s, buf.x_at(i), buf.dy_at(i), buf.dw.data(),
                                           buf.db.data(), GradMode::Overwrite,
                                           buf.workspace.data());
        break;
    }
    ++i;
  };
  for (int k = 0; k < kWarmupSteps; ++k) run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  set_gflops(state, s.forward_flops());  // the same multiply-adds in each of the three passes
}
// conv1: (N,1,28,28) -> (N,32,26,26). Its backward-data is not part of a training step (the
// image needs no gradient); it is listed for completeness.
BENCHMARK_CAPTURE(BM_Conv, conv1_forward, 1, ConvPass::Forward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Conv, conv1_backward_data, 1, ConvPass::BackwardData)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Conv, conv1_backward_filter, 1, ConvPass::BackwardFilter)->Apply(batch128_ms);
// conv2: (N,32,13,13) -> (N,64,11,11), about 90 % of the step's FLOPs.
BENCHMARK_CAPTURE(BM_Conv, conv2_forward, 2, ConvPass::Forward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Conv, conv2_backward_data, 2, ConvPass::BackwardData)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Conv, conv2_backward_filter, 2, ConvPass::BackwardFilter)->Apply(batch128_ms);

enum class DensePass { Forward, BackwardData, BackwardFilter };

void validate_dense(const DenseShape& s, const std::vector<float>& x, const std::vector<float>& w,
                    const std::vector<float>& b) {
  std::vector<float> y(size_t(s.n * s.out));
  cpu::dense_forward<float>(s, x.data(), w.data(), b.data(), y.data());
  std::mt19937_64 rng(4);
  for (int probe = 0; probe < 64; ++probe) {
    const int64_t r = int64_t(rng() % uint64_t(s.n)), o = int64_t(rng() % uint64_t(s.out));
    double ref = b[size_t(o)];
    for (int64_t k = 0; k < s.in; ++k)
      ref += double(x[size_t(r * s.in + k)]) * double(w[size_t(o * s.in + k)]);
    // float sums of 1600 products of values in [-1, 1]: 1e-3 absolute + 1e-4 relative
    if (std::abs(double(y[size_t(r * s.out + o)]) - ref) > 1e-3 + 1e-4 * std::abs(ref))
      die("dense_forward disagrees with a direct sum");
  }
}

void BM_Dense(benchmark::State& state, int64_t in, int64_t out, DensePass pass) {
  const DenseShape s{.n = state.range(0), .in = in, .out = out};
  const size_t x_size = size_t(s.n * s.in), y_size = size_t(s.n * s.out);
  const auto x = random_floats(x_size * kRotations, 21),
             dy = random_floats(y_size * kRotations, 22);
  const auto w = random_floats(size_t(s.in * s.out), 23), b = random_floats(size_t(s.out), 24);
  std::vector<float> y(y_size), dx(x_size), dw(w.size()), db(b.size());
  validate_dense(s, x, w, b);
  int64_t i = 0;
  auto run = [&] {
    const float* xi = x.data() + size_t(i % kRotations) * x_size;
    const float* dyi = dy.data() + size_t(i % kRotations) * y_size;
    switch (pass) {
      case DensePass::Forward:
        cpu::dense_forward<float>(s, xi, w.data(), b.data(), y.data());
        break;
      case DensePass::BackwardData:
        cpu::dense_backward_data<float>(s, dyi, w.data(), dx.data(), GradMode::Overwrite);
        break;
      case DensePass::BackwardFilter:
        cpu::dense_backward_filter<float>(s, xi, dyi, dw.data(), db.data(), GradMode::Overwrite);
        break;
    }
    ++i;
  };
  for (int k = 0; k < kWarmupSteps; ++k) run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * double(s.n) * double(s.in) * double(s.out));
}
// The shared Dense128 on the flattened (N, 64*5*5) features; the heads (128->10, 128->2) are
// a few hundred kFLOP and not worth a row.
BENCHMARK_CAPTURE(BM_Dense, shared_forward, 1600, 128, DensePass::Forward)->Apply(batch128_us);
BENCHMARK_CAPTURE(BM_Dense, shared_backward_data, 1600, 128, DensePass::BackwardData)
    ->Apply(batch128_us);
BENCHMARK_CAPTURE(BM_Dense, shared_backward_filter, 1600, 128, DensePass::BackwardFilter)
    ->Apply(batch128_us);

// Bytes a memory-bound kernel must move per call, shown as "bytes=12.3G/s".
void set_bandwidth(benchmark::State& state, double bytes_per_call) {
  state.counters["bytes"] =
      benchmark::Counter(bytes_per_call * double(state.iterations()), benchmark::Counter::kIsRate);
}

enum class Pass { Forward, Backward };

// The preset's pools: (N,32,26,26) -> 13x13 and (N,64,11,11) -> 5x5 (the last row/column of
// an odd map is dropped, as Keras' 'valid' pooling does).
void BM_Pool(benchmark::State& state, int layer, Pass pass) {
  const int64_t n = state.range(0);
  const auto s = layer == 1 ? polytask::kernels::max_pool2d_shape(n, 32, 26, 26, 2, 2, 2, 2)
                            : polytask::kernels::max_pool2d_shape(n, 64, 11, 11, 2, 2, 2, 2);
  const size_t in = size_t(s.n * s.c * s.h_in * s.w_in),
               out = size_t(s.n * s.c * s.h_out * s.w_out);
  const auto x = random_floats(in * kRotations, 31), dy = random_floats(out * kRotations, 32);
  std::vector<float> y(out), dx(in);
  std::vector<int32_t> argmax(out);
  cpu::max_pool2d_forward<float>(s, x.data(), y.data(), argmax.data());
  int64_t i = 0;
  auto run = [&] {
    const size_t r = size_t(i++ % kRotations);
    if (pass == Pass::Forward)
      cpu::max_pool2d_forward<float>(s, x.data() + r * in, y.data(), argmax.data());
    else
      cpu::max_pool2d_backward<float>(s, dy.data() + r * out, argmax.data(), dx.data(),
                                      GradMode::Overwrite);
  };
  for (int k = 0; k < kWarmupSteps; ++k) run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  // forward: read x, write y and argmax; backward: read dy and argmax, write dx
  set_bandwidth(state, 4.0 * double(in) + 8.0 * double(out));
}
BENCHMARK_CAPTURE(BM_Pool, pool1_forward, 1, Pass::Forward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Pool, pool1_backward, 1, Pass::Backward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Pool, pool2_forward, 2, Pass::Forward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Pool, pool2_backward, 2, Pass::Backward)->Apply(batch128_ms);

// ReLU after conv1 (N*32*26*26 values) and conv2 (N*64*11*11); the layer runs separately from
// the convolution, so these are extra passes over the conv outputs.
void BM_Relu(benchmark::State& state, int64_t per_image, Pass pass) {
  const int64_t count = state.range(0) * per_image;
  const size_t size = size_t(count);
  const auto x = random_floats(size * kRotations, 41), dy = random_floats(size * kRotations, 42);
  std::vector<float> y(size), dx(size);
  cpu::relu_forward<float>(count, x.data(), y.data());
  int64_t i = 0;
  auto run = [&] {
    const size_t r = size_t(i++ % kRotations);
    if (pass == Pass::Forward)
      cpu::relu_forward<float>(count, x.data() + r * size, y.data());
    else
      cpu::relu_backward<float>(count, y.data(), dy.data() + r * size, dx.data(),
                                GradMode::Overwrite);
  };
  for (int k = 0; k < kWarmupSteps; ++k) run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  set_bandwidth(state, (pass == Pass::Forward ? 8.0 : 12.0) * double(count));
}
BENCHMARK_CAPTURE(BM_Relu, relu1_forward, 32 * 26 * 26, Pass::Forward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Relu, relu1_backward, 32 * 26 * 26, Pass::Backward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Relu, relu2_forward, 64 * 11 * 11, Pass::Forward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_Relu, relu2_backward, 64 * 11 * 11, Pass::Backward)->Apply(batch128_ms);

// fashion-type-brightness's BatchNorms: bn1 on conv1's (N,32,26,26), bn2 on conv2's
// (N,64,11,11). Training forward (statistics + normalise), inference forward, backward (dx and
// the parameter gradients).
enum class BnPass { ForwardTrain, ForwardInfer, Backward };

void BM_BatchNorm(benchmark::State& state, int64_t c, int64_t spatial, BnPass pass) {
  const polytask::kernels::BatchNormShape s{.n = state.range(0), .c = c, .spatial = spatial};
  const size_t size = size_t(s.n * s.c * s.spatial);
  const auto x = random_floats(size * kRotations, 51), dy = random_floats(size * kRotations, 52);
  const auto gamma = random_floats(size_t(c), 53), beta = random_floats(size_t(c), 54);
  const size_t channels = size_t(c);
  std::vector<float> y(size), dx(size), mean(channels), invstd(channels), dgamma(channels),
      dbeta(channels), running_mean(channels, 0.0f), running_var(channels, 1.0f);
  int64_t i = 0;
  auto run = [&] {
    const size_t r = size_t(i++ % kRotations);
    switch (pass) {
      case BnPass::ForwardTrain:
        cpu::batchnorm_forward_train<float>(s, x.data() + r * size, gamma.data(), beta.data(),
                                            1e-3f, 0.99f, y.data(), mean.data(), invstd.data(),
                                            running_mean.data(), running_var.data());
        break;
      case BnPass::ForwardInfer:
        cpu::batchnorm_forward_infer<float>(s, x.data() + r * size, gamma.data(), beta.data(),
                                            running_mean.data(), running_var.data(), 1e-3f,
                                            y.data());
        break;
      case BnPass::Backward:
        cpu::batchnorm_backward<float>(s, x.data() + r * size, dy.data() + r * size,
                                       gamma.data(), mean.data(), invstd.data(), dx.data(),
                                       dgamma.data(), dbeta.data(), GradMode::Overwrite);
        break;
    }
  };
  // Statistics of the first input for the backward pass.
  cpu::batchnorm_forward_train<float>(s, x.data(), gamma.data(), beta.data(), 1e-3f, 0.99f,
                                      y.data(), mean.data(), invstd.data(), running_mean.data(),
                                      running_var.data());
  for (int k = 0; k < kWarmupSteps; ++k) run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  // The bytes a fused kernel cannot avoid: forward reads x and writes y, backward reads x and
  // dy and writes dx (two-pass statistics re-read x, which this does not count).
  set_bandwidth(state, (pass == BnPass::Backward ? 12.0 : 8.0) * double(size));
}
BENCHMARK_CAPTURE(BM_BatchNorm, bn1_forward_train, 32, 26 * 26, BnPass::ForwardTrain)
    ->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_BatchNorm, bn1_forward_infer, 32, 26 * 26, BnPass::ForwardInfer)
    ->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_BatchNorm, bn1_backward, 32, 26 * 26, BnPass::Backward)->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_BatchNorm, bn2_forward_train, 64, 11 * 11, BnPass::ForwardTrain)
    ->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_BatchNorm, bn2_forward_infer, 64, 11 * 11, BnPass::ForwardInfer)
    ->Apply(batch128_ms);
BENCHMARK_CAPTURE(BM_BatchNorm, bn2_backward, 64, 11 * 11, BnPass::Backward)->Apply(batch128_ms);

// fashion-type-brightness's Dropout(0.3) on each head's (N, 64) hidden layer.
void BM_Dropout(benchmark::State& state, Pass pass) {
  const int64_t count = state.range(0) * 64;
  const size_t size = size_t(count);
  const auto x = random_floats(size * kRotations, 61);
  std::vector<float> y(size);
  uint64_t step = 0;
  auto run = [&] {
    const size_t r = size_t(step % kRotations);
    if (pass == Pass::Forward)
      cpu::dropout_forward<float>(count, 0.3f, 7, step++, 0, x.data() + r * size, y.data());
    else
      cpu::dropout_backward<float>(count, 0.3f, 7, step++, 0, x.data() + r * size, y.data(),
                                   GradMode::Overwrite);
  };
  for (int k = 0; k < kWarmupSteps; ++k) run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  set_bandwidth(state, 8.0 * double(count));
}
BENCHMARK_CAPTURE(BM_Dropout, forward, Pass::Forward)->Apply(batch128_us);
BENCHMARK_CAPTURE(BM_Dropout, backward, Pass::Backward)->Apply(batch128_us);

// The heads' losses at batch N: softmax cross-entropy over 10 classes (both presets) and MSE on
// one value (fashion's brightness), forward then backward, as a step runs them.
void BM_Loss(benchmark::State& state, int64_t classes) {
  const int64_t rows = state.range(0), count = rows * classes;
  const auto logits = random_floats(size_t(count), 71), targets = random_floats(size_t(rows), 72);
  const size_t n_rows = size_t(rows), n_values = size_t(count);
  std::vector<int32_t> labels(n_rows);
  for (size_t r = 0; r < n_rows; ++r) labels[r] = int32_t(r % size_t(classes));
  std::vector<float> probs(n_values), grad(n_values);
  float loss = 0;
  for (auto _ : state) {
    if (classes > 1) {
      cpu::softmax_cross_entropy_forward<float>(rows, classes, logits.data(), labels.data(),
                                                probs.data(), &loss);
      cpu::softmax_cross_entropy_backward<float>(rows, classes, probs.data(), labels.data(), 1.0f,
                                                 grad.data(), GradMode::Overwrite);
    } else {
      cpu::mse_forward<float>(rows, logits.data(), targets.data(), &loss);
      cpu::mse_backward<float>(rows, logits.data(), targets.data(), 1.0f, grad.data(),
                               GradMode::Overwrite);
    }
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
}
BENCHMARK_CAPTURE(BM_Loss, softmax_ce_10, 10)->Apply(batch128_us);
BENCHMARK_CAPTURE(BM_Loss, mse_1, 1)->Apply(batch128_us);

// One Adam step over every trainable parameter of a preset (one contiguous buffer, as the
// engine keeps them): reads param, grad, m, v and writes param, m, v.
void BM_Adam(benchmark::State& state, const char* preset) {
  const int64_t count = Workload(state.range(0), preset).network->parameters().trainable_count;
  const size_t size = size_t(count);
  auto param = random_floats(size * kRotations, 81), m = random_floats(size * kRotations, 82),
       v = random_floats(size * kRotations, 83);
  const auto grad = random_floats(size * kRotations, 84);
  for (auto& e : v) e = std::abs(e);
  polytask::kernels::AdamParams p;
  int64_t i = 0;
  auto run = [&] {
    const size_t r = size_t(i++ % kRotations);
    p.step = 1 + i;
    cpu::adam_update<float>(count, p, param.data() + r * size, grad.data() + r * size,
                            m.data() + r * size, v.data() + r * size);
  };
  for (int k = 0; k < kWarmupSteps; ++k) run();
  for (auto _ : state) {
    run();
    benchmark::ClobberMemory();
  }
  state.counters["params"] = double(count);
  set_bandwidth(state, 28.0 * double(count));
}
BENCHMARK_CAPTURE(BM_Adam, mnist_digit_parity, kPreset)->Apply(batch128_us);
BENCHMARK_CAPTURE(BM_Adam, fashion_type_brightness, kFashionPreset)->Apply(batch128_us);

}  // namespace

namespace {
// The BLAS shared object the loader mapped (the build links OpenBLAS's OpenMP variant by RPATH;
// an LD_LIBRARY_PATH can still override it, which is worth seeing in the output).
std::string mapped_blas() {
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (!maps) return "(unknown)";
  char line[1024];
  std::string found = "(none mapped)";
  while (std::fgets(line, sizeof line, maps)) {
    const std::string text(line);
    const auto slash = text.find('/');
    if (slash != std::string::npos && text.find("blas", slash) != std::string::npos) {
      found = text.substr(slash);
      found.erase(found.find_last_not_of("\n") + 1);
      break;
    }
  }
  std::fclose(maps);
  return found;
}
}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("preset", kPreset);
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  benchmark::AddCustomContext("OPENBLAS_CORETYPE", coretype ? coretype : "(auto)");
  benchmark::AddCustomContext("blas_library", mapped_blas());
  benchmark::AddCustomContext("cpu_kernels", cpu::isa_description());
  char peak[32];
  std::snprintf(peak, sizeof peak, "%.1f", measured_peak() / 1e9);
  benchmark::AddCustomContext("peak_gflops", peak);
  try {
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_step: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
