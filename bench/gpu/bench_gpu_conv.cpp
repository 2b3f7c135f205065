// Our convolution kernels (kernels/cuda/conv2d.cu) against cuDNN, same inputs, same run,
// timed with CUDA events (Google Benchmark manual time). cuDNN runs FP32 on the FMA units
// (CUDNN_FMA_MATH, no TF32) with the fastest such algorithm cudnnFind*AlgorithmEx measured for
// the shape (kernels/vendor/cudnn_conv.h); its workspace is allocated once per shape.
//
// Rows: conv/<op>/<impl>/<layer>/n<batch>
//   op     fwd            y = conv(x, w), no bias: one kernel each
//          fwd_bias_relu  y = ReLU(conv(x, w) + b): ours fused in one kernel; cuDNN
//                         cudnnConvolutionForward + cudnnAddTensor + cudnnActivationForward
//          bwd_data       dx = conv_transpose(dy, w), Overwrite. Measured for the first layers
//                         too, although a network never needs their input gradient.
//          bwd_filter     dw and db, Overwrite: ours one pass (+ the chunk sum when split);
//                         cuDNN cudnnConvolutionBackwardFilter + cudnnConvolutionBackwardBias
//   impl   cudnn | ours (Auto tiles) | ours_<tiles> (each tile configuration, batch 128 only,
//          so the Auto heuristics can be checked against the alternatives)
//          | ours_tf32 | ours_bf16: Conv2dTuning::precision = TF32 / BF16 (tensor cores, operands
//          rounded as they are staged, FP32 accumulation; Auto tiles)
//          | cudnn_tf32: cuDNN with CUDNN_TENSOR_OP_MATH on the same FP32 tensors (TF32 tensor
//          cores where its fastest algorithm uses them; the label says which). cuDNN has no
//          BF16 mode for FP32 tensors without a conversion pass, so ours_bf16 is compared with
//          cudnn_tf32 too. NVIDIA_TF32_OVERRIDE must be unset.
// Counters:
//   FLOP/s, bytes/s        the FLOPs and compulsory bytes below over the measured time
//   floor_us               the H100 floor for the row (table below)
//   cudnn_time_over_ours   (ours rows, cuDNN builds) cuDNN's time / our time, both re-timed
//                          back to back right after the row's own loop (kRatioReps calls each),
//                          so the ratio compares like with like: > 1 means WE ARE FASTER. FP32
//                          rows against cudnn, TF32/BF16 rows against cudnn_tf32.
// cuDNN rows carry the chosen algorithm as their label. Ours rows are validated against cuDNN
// on the same inputs before timing (skipped with the difference when they disagree); builds
// without cuDNN time ours alone, unvalidated.
//
// Floors, H100 SXM (the figures used here): FP32 without tensor cores 67 TFLOP/s, HBM3
// 3.35 TB/s; for the tensor-core rows NVIDIA's dense H100 SXM figures, TF32 494.7 TFLOP/s and
// BF16 989.4 TFLOP/s (PCIe: 378 / 756), which make every layer below memory-bound (the
// compute column is FP32's; e.g. 32x32x32 -> 32 at batch 1024 needs 39 µs of TF32 math but 80
// µs of traffic, and the tensors stay FP32 in memory). A row's floor is the larger of FLOPs /
// peak and bytes / 3.35e12. FLOPs =
// 2·N·H_out·W_out·C_out·C_in·K_h·K_w for every op (bwd_filter adds N·H_out·W_out·C_out for
// db); bytes = 4·(|x| + |w| + |y|), each tensor read or written once (the same for all ops).
//
//   layer (3x3 filters)       batch   MFLOP     MB     floor (µs)
//   28x28x1 -> 32 valid         128     49.8    11.5     3.43  memory
//                              1024    398.7    91.8    27.4   memory
//   13x13x32 -> 64 valid        128    570.9     6.8     8.52  compute
//                              1024   4567.6    53.9    68.2   compute
//   32x32x3 -> 32 same          128    226.5    18.4     5.48  memory
//                              1024   1811.9   146.8    43.8   memory
//   32x32x32 -> 32 same         128   2415.9    33.6    36.1   compute
//                              1024  19327.4   268.5   288.5   compute
//
// A launch costs ~2-4 µs of fixed overhead on top, which matters for every batch-128 row.
// Caches: batch-128 tensors fit the 50 MB L2 and stay there between iterations, for us and
// for cuDNN alike (as in a training step, where the previous layer just wrote them); the
// batch-1024 ones mostly do not.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "bench/gpu/gpu_bench.h"
#include "kernels/conv2d.h"

#if defined(POLYTASK_WITH_CUDNN)
#include "kernels/vendor/cudnn_conv.h"
#endif

namespace polytask::bench {
namespace {

using kernels::Conv2dShape;
using kernels::GradMode;
using kernels::Padding;
using kernels::cuda::Conv2dEpilogue;
using kernels::cuda::Conv2dFilterTiles;
using kernels::cuda::Conv2dTiles;
using kernels::cuda::Conv2dTuning;
using kernels::MathPrecision;

// Half an ulp of the operand format (0 for FP32).
double operand_roundoff(MathPrecision precision) {
  switch (precision) {
    case MathPrecision::FP32:
      return 0.0;
    case MathPrecision::TF32:
      return std::ldexp(1.0, -11);
    case MathPrecision::BF16:
      return std::ldexp(1.0, -8);
  }
  return 0.0;
}

struct Layer {
  const char* name;
  int64_t c_in, h, w, c_out;
  Padding padding;
};
constexpr Layer kLayers[] = {
    {"28x28x1_32_valid", 1, 28, 28, 32, Padding::Valid},
    {"13x13x32_64_valid", 32, 13, 13, 64, Padding::Valid},
    {"32x32x3_32_same", 3, 32, 32, 32, Padding::Same},
    {"32x32x32_32_same", 32, 32, 32, 32, Padding::Same},
};

enum class Op { Forward, ForwardBiasRelu, BackwardData, BackwardFilter };
const char* op_name(Op op) {
  switch (op) {
    case Op::Forward:
      return "fwd";
    case Op::ForwardBiasRelu:
      return "fwd_bias_relu";
    case Op::BackwardData:
      return "bwd_data";
    case Op::BackwardFilter:
      return "bwd_filter";
  }
  return "?";
}

class DeviceFloats {
 public:
  explicit DeviceFloats(int64_t count) : count_(std::max<int64_t>(count, 1)) {
    POLYTASK_CUDA_CHECK(
        cudaMalloc(reinterpret_cast<void**>(&data_), size_t(count_) * sizeof(float)));
  }
  ~DeviceFloats() { cudaFree(data_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  float* get() const { return data_; }
  int64_t size() const { return count_; }

  // Values in [-1, 1) from a fixed linear congruential sequence: cheap for 100M+ elements.
  void fill_random(uint32_t seed) const {
    const std::vector<float> host = lcg_values(static_cast<size_t>(count_), seed, -1.0f, 1.0f);
    POLYTASK_CUDA_CHECK(
        cudaMemcpy(data_, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  std::vector<float> download() const {
    std::vector<float> host(static_cast<size_t>(count_));
    POLYTASK_CUDA_CHECK(cudaDeviceSynchronize());
    POLYTASK_CUDA_CHECK(
        cudaMemcpy(host.data(), data_, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  int64_t count_;
  float* data_ = nullptr;
};

// One shape's tensors (and cuDNN's plan for it), made once and shared by its rows: the
// algorithm search and the 100+ MB batch-1024 tensors are too costly to repeat per row.
struct Problem {
  Conv2dShape s;
  DeviceFloats x, w, b, y, dy, dx, dw, db, workspace;
#if defined(POLYTASK_WITH_CUDNN)
  std::unique_ptr<kernels::vendor::CudnnConv2d> cudnn;         // CUDNN_FMA_MATH
  std::unique_ptr<kernels::vendor::CudnnConv2d> cudnn_tensor;  // CUDNN_TENSOR_OP_MATH
#endif

  explicit Problem(const Conv2dShape& shape)
      : s(shape),
        x(s.n * s.c_in * s.h_in * s.w_in),
        w(s.c_out * s.patch_size()),
        b(s.c_out),
        y(s.n * s.c_out * s.out_pixels()),
        dy(s.n * s.c_out * s.out_pixels()),
        dx(s.n * s.c_in * s.h_in * s.w_in),
        dw(s.c_out * s.patch_size()),
        db(s.c_out),
        workspace(max_workspace(shape)) {
    x.fill_random(1);
    w.fill_random(2);
    b.fill_random(3);
    dy.fill_random(4);
  }

  // Room for every filter tiling the rows try, not only Auto's.
  static int64_t max_workspace(const Conv2dShape& shape) {
    int64_t most = 0;
    for (const Conv2dFilterTiles tiles :
         {Conv2dFilterTiles::Auto, Conv2dFilterTiles::M32N16, Conv2dFilterTiles::M32N32,
          Conv2dFilterTiles::M32N64, Conv2dFilterTiles::M64N64}) {
      Conv2dTuning tuning;
      tuning.filter_tiles = tiles;
      most = std::max(most, kernels::cuda::conv2d_workspace_elements(shape, tuning));
    }
    return most;
  }

  double flops(Op op) const {
    const double forward = s.forward_flops();
    return op == Op::BackwardFilter ? forward + double(s.n * s.out_pixels() * s.c_out) : forward;
  }
  double bytes() const { return 4.0 * double(x.size() + w.size() + y.size()); }
  double floor_us(Op op, MathPrecision precision) const {
    return std::max(flops(op) / peak_flops(precision), bytes() / kHbmBytes) * 1e6;
  }
};

Problem& problem(const Layer& layer, int64_t batch) {
  static std::map<std::tuple<const char*, int64_t>, std::unique_ptr<Problem>> problems;
  auto& slot = problems[{layer.name, batch}];
  if (!slot)
    slot = std::make_unique<Problem>(kernels::conv2d_shape(batch, layer.c_in, layer.h, layer.w,
                                                           layer.c_out, 3, 3, 1, 1, layer.padding));
  return *slot;
}

void run_ours(const Problem& p, Op op, const Conv2dTuning& tuning) {
  switch (op) {
    case Op::Forward:
      kernels::cuda::conv2d_forward(p.s, p.x.get(), p.w.get(), nullptr, p.y.get(),
                                    p.workspace.get(), nullptr, Conv2dEpilogue{}, tuning);
      return;
    case Op::ForwardBiasRelu: {
      Conv2dEpilogue epilogue;
      epilogue.relu = true;
      kernels::cuda::conv2d_forward(p.s, p.x.get(), p.w.get(), p.b.get(), p.y.get(),
                                    p.workspace.get(), nullptr, epilogue, tuning);
      return;
    }
    case Op::BackwardData:
      kernels::cuda::conv2d_backward_data(p.s, p.dy.get(), p.w.get(), p.dx.get(),
                                          GradMode::Overwrite, p.workspace.get(), nullptr, tuning);
      return;
    case Op::BackwardFilter:
      kernels::cuda::conv2d_backward_filter(p.s, p.x.get(), p.dy.get(), p.dw.get(), p.db.get(),
                                            GradMode::Overwrite, p.workspace.get(), nullptr,
                                            tuning);
      return;
  }
}

void common_counters(benchmark::State& state, const Problem& p, Op op, MathPrecision precision) {
  set_rates(state, p.flops(op), p.bytes());
  state.counters["floor_us"] = p.floor_us(op, precision);
}

#if defined(POLYTASK_WITH_CUDNN)
// The tensors an op writes, for validation.
std::vector<const DeviceFloats*> outputs(const Problem& p, Op op) {
  switch (op) {
    case Op::Forward:
    case Op::ForwardBiasRelu:
      return {&p.y};
    case Op::BackwardData:
      return {&p.dx};
    case Op::BackwardFilter:
      return {&p.dw, &p.db};
  }
  return {};
}

// Terms per output element: the length of the sums being compared.
int64_t depth(const Conv2dShape& s, Op op) {
  switch (op) {
    case Op::Forward:
    case Op::ForwardBiasRelu:
      return s.patch_size();
    case Op::BackwardData:
      return s.c_out * s.k_h * s.k_w;
    case Op::BackwardFilter:
      return s.n * s.out_pixels();
  }
  return 1;
}

const kernels::vendor::CudnnHandle& cudnn_handle() {
  static const kernels::vendor::CudnnHandle handle;
  return handle;
}

// cuDNN's FMA (FP32) plan for FP32 rows, its tensor-op plan for TF32/BF16 ones.
const kernels::vendor::CudnnConv2d& cudnn_for(Problem& p, MathPrecision precision) {
  const bool tensor = precision != MathPrecision::FP32;
  auto& slot = tensor ? p.cudnn_tensor : p.cudnn;
  if (!slot)
    slot = std::make_unique<kernels::vendor::CudnnConv2d>(
        cudnn_handle(), p.s, kernels::vendor::CudnnAlgoPick::Fastest,
        tensor ? kernels::vendor::CudnnMath::TensorOp : kernels::vendor::CudnnMath::Fma);
  return *slot;
}

void run_cudnn(Problem& p, Op op, MathPrecision precision) {
  const kernels::vendor::CudnnConv2d& conv = cudnn_for(p, precision);
  switch (op) {
    case Op::Forward:
      return conv.forward(p.x.get(), p.w.get(), nullptr, p.y.get(), false, nullptr);
    case Op::ForwardBiasRelu:
      return conv.forward(p.x.get(), p.w.get(), p.b.get(), p.y.get(), true, nullptr);
    case Op::BackwardData:
      return conv.backward_data(p.dy.get(), p.w.get(), p.dx.get(), GradMode::Overwrite, nullptr);
    case Op::BackwardFilter:
      return conv.backward_filter(p.x.get(), p.dy.get(), p.dw.get(), p.db.get(),
                                  GradMode::Overwrite, nullptr);
  }
}

std::string cudnn_algorithm(Problem& p, Op op, MathPrecision precision) {
  const kernels::vendor::CudnnConv2d& conv = cudnn_for(p, precision);
  switch (op) {
    case Op::Forward:
    case Op::ForwardBiasRelu:
      return std::string(conv.forward_algorithm()) +
             (conv.forward_on_tensor_cores() ? " tensor-op" : "");
    case Op::BackwardData:
      return std::string(conv.backward_data_algorithm()) +
             (conv.backward_data_on_tensor_cores() ? " tensor-op" : "");
    case Op::BackwardFilter:
      return std::string(conv.backward_filter_algorithm()) +
             (conv.backward_filter_on_tensor_cores() ? " tensor-op" : "");
  }
  return "";
}

// Validate before timing: ours against cuDNN on the row's own inputs. Both are FP32 sums of
// `depth` terms of magnitude <= 1 in different orders (cuDNN's possibly through Winograd or
// FFT transforms); 1e-5·sqrt(depth) of the largest |value| is far above their rounding
// differences and far below any indexing error. TF32/BF16 rows (against cuDNN's tensor-op
// plan, which may round operands differently or not at all) add 6u·sqrt(depth), u = 2^-11 or
// 2^-8: each term may differ by up to 2u·|a||b|, randomly in sign, so the sums differ by
// ~0.7u·sqrt(depth) — 6u·sqrt(depth) is ~9 standard deviations, far below a wrong term's effect
// (~|value| ~ 0.6·sqrt(depth)).
bool agrees_with_cudnn(Problem& p, Op op, const Conv2dTuning& tuning, std::string& why) {
  run_cudnn(p, op, tuning.precision);
  std::vector<std::vector<float>> theirs;
  for (const DeviceFloats* out : outputs(p, op)) theirs.push_back(out->download());
  run_ours(p, op, tuning);
  const std::vector<const DeviceFloats*> ours = outputs(p, op);
  for (size_t t = 0; t < ours.size(); ++t) {
    const std::vector<float> mine = ours[t]->download();
    double largest = 0, worst = 0;
    for (size_t i = 0; i < mine.size(); ++i) {
      largest = std::max(largest, std::abs(double(theirs[t][i])));
      const double diff = std::abs(double(mine[i]) - double(theirs[t][i]));
      worst = std::isnan(diff) ? INFINITY : std::max(worst, diff);
    }
    const double root_depth = std::sqrt(double(depth(p.s, op)));
    if (!(worst <= 1e-5 * root_depth * std::max(largest, 1.0) +
                       6.0 * operand_roundoff(tuning.precision) * root_depth)) {
      why = "ours differs from cuDNN (" + cudnn_algorithm(p, op, tuning.precision) + ") by " +
            std::to_string(worst) +
            " (largest |value| " + std::to_string(largest) + ")";
      return false;
    }
  }
  return true;
}

void bm_cudnn(benchmark::State& state, Layer layer, int64_t batch, Op op,
              MathPrecision precision) {
  if (skip_without_gpu(state)) return;
  Problem& p = problem(layer, batch);
  state.SetLabel(cudnn_algorithm(p, op, precision));
  time_with_events(state, [&] { run_cudnn(p, op, precision); });
  common_counters(state, p, op, precision);
}
#endif

void bm_ours(benchmark::State& state, Layer layer, int64_t batch, Op op, Conv2dTuning tuning) {
  if (skip_without_gpu(state)) return;
  Problem& p = problem(layer, batch);
#if defined(POLYTASK_WITH_CUDNN)
  std::string why;
  if (!agrees_with_cudnn(p, op, tuning, why)) {
    state.SkipWithError(why.c_str());
    return;
  }
#endif
  time_with_events(state, [&] { run_ours(p, op, tuning); });
  common_counters(state, p, op, tuning.precision);
#if defined(POLYTASK_WITH_CUDNN)
  const double ours = mean_ms([&] { run_ours(p, op, tuning); }, kRatioReps);
  const double theirs = mean_ms([&] { run_cudnn(p, op, tuning.precision); }, kRatioReps);
  state.counters["cudnn_time_over_ours"] = theirs / ours;
#endif
}

const char* tiles_suffix(Conv2dTiles tiles) {
  switch (tiles) {
    case Conv2dTiles::Auto:
      return "";
    case Conv2dTiles::M128N64:
      return "_128x64";
    case Conv2dTiles::M64N64:
      return "_64x64";
    case Conv2dTiles::M128N32:
      return "_128x32";
    case Conv2dTiles::M64N32:
      return "_64x32";
  }
  return "";
}

const char* filter_tiles_suffix(Conv2dFilterTiles tiles) {
  switch (tiles) {
    case Conv2dFilterTiles::Auto:
      return "";
    case Conv2dFilterTiles::M32N16:
      return "_32x16";
    case Conv2dFilterTiles::M32N32:
      return "_32x32";
    case Conv2dFilterTiles::M32N64:
      return "_32x64";
    case Conv2dFilterTiles::M64N64:
      return "_64x64";
  }
  return "";
}

void register_ours(const std::string& name, const Layer& layer, int64_t batch, Op op,
                   const Conv2dTuning& tuning) {
  benchmark::RegisterBenchmark(name.c_str(), bm_ours, layer, batch, op, tuning)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
}

void register_all() {
  for (const int64_t batch : {128, 1024})
    for (const Layer& layer : kLayers)
      for (const Op op : {Op::Forward, Op::ForwardBiasRelu, Op::BackwardData, Op::BackwardFilter}) {
        const std::string shape = std::string(layer.name) + "/n" + std::to_string(batch);
        const std::string prefix = std::string("conv/") + op_name(op) + "/";
#if defined(POLYTASK_WITH_CUDNN)
        benchmark::RegisterBenchmark((prefix + "cudnn/" + shape).c_str(), bm_cudnn, layer, batch,
                                     op, MathPrecision::FP32)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark((prefix + "cudnn_tf32/" + shape).c_str(), bm_cudnn, layer,
                                     batch, op, MathPrecision::TF32)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
#endif
        register_ours(prefix + "ours/" + shape, layer, batch, op, Conv2dTuning{});
        for (const MathPrecision precision : {MathPrecision::TF32, MathPrecision::BF16}) {
          Conv2dTuning tuning;
          tuning.precision = precision;
          register_ours(prefix + "ours_" + kernels::precision_name(precision) + "/" + shape, layer,
                        batch, op, tuning);
        }
        if (batch != 128 || op == Op::ForwardBiasRelu) continue;
        if (op == Op::BackwardFilter) {
          for (const Conv2dFilterTiles tiles :
               {Conv2dFilterTiles::M32N16, Conv2dFilterTiles::M32N32, Conv2dFilterTiles::M32N64,
                Conv2dFilterTiles::M64N64}) {
            Conv2dTuning tuning;
            tuning.filter_tiles = tiles;
            register_ours(prefix + "ours" + filter_tiles_suffix(tiles) + "/" + shape, layer, batch,
                          op, tuning);
          }
        } else {
          for (const Conv2dTiles tiles : {Conv2dTiles::M128N64, Conv2dTiles::M64N64,
                                          Conv2dTiles::M128N32, Conv2dTiles::M64N32}) {
            Conv2dTuning tuning;
            tuning.tiles = tiles;
            register_ours(prefix + "ours" + tiles_suffix(tiles) + "/" + shape, layer, batch, op,
                          tuning);
          }
        }
      }
}

}  // namespace
}  // namespace polytask::bench

int main(int argc, char** argv) {
  return polytask::bench::run_benchmarks(argc, argv, polytask::bench::register_all);
}
