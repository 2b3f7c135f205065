// CUDA versions of the mixing ops (kernels/mixing.h): softmax, MMoE's gated mixture and the
// cross-stitch row.
//
// Per-row work (softmax, the gate gradient) uses the row groups of kernels/cuda/row_groups.h: a
// group of 4 to 32 lanes per row, combined by shuffles in a fixed butterfly (a whole block for
// rows beyond 1024 elements). Elementwise work (the mixture, the expert and input gradients,
// the cross-stitch forward) is one thread per output element in a grid-stride loop. The alpha
// gradient is a long dot product per input — batch × elements, e.g. 128 × 32·14·14 — so it is a
// two-pass reduction per alpha over many blocks (see cross_stitch_backward_alpha below).
//
// Precision: a product of two floats is exact in double, so the double sums here equal the
// CPU reference's wherever they add in the same order (the mixture and cross-stitch forwards:
// the CPU's bits). Single float products use __fmul_rn, which nvcc may not fuse into the
// Accumulate addition that follows, so the gradients that are one product are the CPU's bits.
#include <limits>

#include "kernels/cuda/block_reduce.h"
#include "kernels/cuda/grid_stride.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/row_groups.h"
#include "kernels/error.h"
#include "kernels/mixing.h"
#include "kernels/reduce.h"

namespace polytask::kernels::cuda {

namespace {

using detail::for_each_column;
using detail::global_thread;
using detail::grid_threads;
using detail::kFlatThreads;
using detail::kRowBlockThreads;
using detail::row_allreduce;

constexpr int kThreads = kRowBlockThreads;
constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

template <bool kAccumulate>
__device__ __forceinline__ void write_grad(float* dst, float value) {
  if constexpr (kAccumulate)
    *dst = *dst + value;
  else
    *dst = value;
}

// ---- softmax ------------------------------------------------------------------------------------

// One turn per kRowsPerTurn rows; the row group (lane, group) takes row first + group. The loop
// bound is the same for the whole block, so every thread reaches every shuffle and barrier.
// A NaN or +inf in a row makes the whole row NaN, as on the CPU (max ignores NaN here, but the
// NaN's exp then makes the sum NaN).
template <int kRowThreads>
__global__ void __launch_bounds__(kThreads)
    softmax_forward_kernel(int64_t rows, int64_t features, const float* __restrict__ x,
                           float* __restrict__ y) {
  __shared__ float float_scratch[kThreads / 32];
  __shared__ double double_scratch[kThreads / 32];
  constexpr int kRowsPerTurn = kThreads / kRowThreads;
  const int lane = int(threadIdx.x) % kRowThreads;
  const int group = int(threadIdx.x) / kRowThreads;
  for (int64_t first = int64_t(blockIdx.x) * kRowsPerTurn; first < rows;
       first += int64_t(gridDim.x) * kRowsPerTurn) {
    const int64_t row = first + group;
    const bool active = row < rows;
    const int64_t base = (active ? row : 0) * features;
    const float* __restrict__ in = x + base;

    float mine = kNegativeInfinity;
    if (active)
      for_each_column<kRowThreads>(in, features, lane,
                                   [&](int64_t, float v) { mine = detail::MaxOp{}(mine, v); });
    const double max =
        double(row_allreduce<kRowThreads, kThreads>(mine, detail::MaxOp{}, float_scratch));

    double sum = 0.0;
    if (active)
      for_each_column<kRowThreads>(in, features, lane,
                                   [&](int64_t, float v) { sum += exp(double(v) - max); });
    sum = row_allreduce<kRowThreads, kThreads>(sum, detail::SumOp{}, double_scratch);

    if (active) {
      float* __restrict__ out = y + base;
      for_each_column<kRowThreads>(in, features, lane, [&](int64_t j, float v) {
        out[j] = float(exp(double(v) - max) / sum);
      });
    }
  }
}

template <int kRowThreads, bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    softmax_backward_kernel(int64_t rows, int64_t features, const float* __restrict__ y,
                            const float* __restrict__ dy, float* __restrict__ dx) {
  __shared__ double double_scratch[kThreads / 32];
  constexpr int kRowsPerTurn = kThreads / kRowThreads;
  const int lane = int(threadIdx.x) % kRowThreads;
  const int group = int(threadIdx.x) / kRowThreads;
  for (int64_t first = int64_t(blockIdx.x) * kRowsPerTurn; first < rows;
       first += int64_t(gridDim.x) * kRowsPerTurn) {
    const int64_t row = first + group;
    const bool active = row < rows;
    const int64_t base = (active ? row : 0) * features;
    const float* __restrict__ p = y + base;
    const float* __restrict__ g = dy + base;

    double dot = 0.0;
    if (active)
      for_each_column<kRowThreads>(p, features, lane,
                                   [&](int64_t j, float v) { dot += double(v) * double(g[j]); });
    dot = row_allreduce<kRowThreads, kThreads>(dot, detail::SumOp{}, double_scratch);

    if (active) {
      float* __restrict__ out = dx + base;
      for_each_column<kRowThreads>(p, features, lane, [&](int64_t j, float v) {
        write_grad<kAccumulate>(out + j, float(double(v) * (double(g[j]) - dot)));
      });
    }
  }
}

// ---- mixture ------------------------------------------------------------------------------------

// y[r, j] = Σ_e gate[r, e]·experts[r, e·width + j], one thread per output element; consecutive
// threads take consecutive j, so the expert reads are coalesced.
__global__ void __launch_bounds__(kFlatThreads)
    mixture_forward_kernel(MixtureShape s, const float* __restrict__ experts,
                           const float* __restrict__ gate, float* __restrict__ y) {
  const int64_t row_size = s.experts * s.width;
  for (int64_t i = global_thread(); i < s.rows * s.width; i += grid_threads()) {
    const int64_t r = i / s.width, j = i - r * s.width;
    const float* __restrict__ x = experts + r * row_size + j;
    const float* __restrict__ g = gate + r * s.experts;
    double sum = 0.0;
    for (int64_t e = 0; e < s.experts; ++e) sum = fma(double(g[e]), double(x[e * s.width]), sum);
    y[i] = float(sum);
  }
}

// dexperts[r, e·width + j] = gate[r, e]·dy[r, j], one thread per expert element.
template <bool kAccumulate>
__global__ void __launch_bounds__(kFlatThreads)
    mixture_experts_grad_kernel(MixtureShape s, const float* __restrict__ gate,
                                const float* __restrict__ dy, float* __restrict__ dexperts) {
  const int64_t row_size = s.experts * s.width;
  for (int64_t k = global_thread(); k < s.rows * row_size; k += grid_threads()) {
    const int64_t r = k / row_size, within = k - r * row_size;
    const int64_t e = within / s.width, j = within - e * s.width;
    write_grad<kAccumulate>(dexperts + k, __fmul_rn(gate[r * s.experts + e], dy[r * s.width + j]));
  }
}

// dgate[q] = Σ_j experts[q·width + j]·dy[(q / experts)·width + j] for the rows·experts pairs q =
// (r, e): expert e's slice of row r is contiguous, so each pair is a row of `width`.
template <int kRowThreads, bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    mixture_gate_grad_kernel(MixtureShape s, const float* __restrict__ experts,
                             const float* __restrict__ dy, float* __restrict__ dgate) {
  __shared__ double double_scratch[kThreads / 32];
  constexpr int kRowsPerTurn = kThreads / kRowThreads;
  const int lane = int(threadIdx.x) % kRowThreads;
  const int group = int(threadIdx.x) / kRowThreads;
  const int64_t pairs = s.rows * s.experts;
  for (int64_t first = int64_t(blockIdx.x) * kRowsPerTurn; first < pairs;
       first += int64_t(gridDim.x) * kRowsPerTurn) {
    const int64_t q = first + group;
    const bool active = q < pairs;
    const int64_t pair = active ? q : 0;
    const float* __restrict__ x = experts + pair * s.width;
    const float* __restrict__ g = dy + (pair / s.experts) * s.width;
    double dot = 0.0;
    if (active)
      for_each_column<kRowThreads>(x, s.width, lane,
                                   [&](int64_t j, float v) { dot += double(v) * double(g[j]); });
    dot = row_allreduce<kRowThreads, kThreads>(dot, detail::SumOp{}, double_scratch);
    if (active && lane == 0) write_grad<kAccumulate>(dgate + q, float(dot));
  }
}

// ---- cross-stitch -------------------------------------------------------------------------------

// The inputs travel by value in the kernel's parameters (no device-side array to allocate).
struct StitchInputs {
  const float* x[kMaxCrossStitchInputs];
  int count;
};

// y[i] = Σ_s alpha[s]·x_s[i] in input order. The loop over inputs is unrolled to the maximum
// with a guard, so every parameter access has a constant index (a variable index into kernel
// parameters spills them to local memory).
__global__ void __launch_bounds__(kFlatThreads)
    cross_stitch_forward_kernel(int64_t count, StitchInputs xs, const float* __restrict__ alpha,
                                float* __restrict__ y) {
  double a[kMaxCrossStitchInputs];
#pragma unroll
  for (int s = 0; s < kMaxCrossStitchInputs; ++s) a[s] = s < xs.count ? double(alpha[s]) : 0.0;
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    double sum = 0.0;
#pragma unroll
    for (int s = 0; s < kMaxCrossStitchInputs; ++s)
      if (s < xs.count) sum = fma(a[s], double(xs.x[s][i]), sum);
    y[i] = float(sum);
  }
}

template <bool kAccumulate>
__global__ void __launch_bounds__(kFlatThreads)
    cross_stitch_input_grad_kernel(int64_t count, const float* __restrict__ alpha, int input,
                                   const float* __restrict__ dy, float* __restrict__ dx) {
  const float scale = alpha[input];
  for (int64_t i = global_thread(); i < count; i += grid_threads())
    write_grad<kAccumulate>(dx + i, __fmul_rn(scale, dy[i]));
}

// The alpha gradient's two passes. A block sums at least kAlphaMinPerBlock elements, so small
// activations take one block per alpha and finish in one launch; a first pass has at most
// kAlphaMaxBlocks blocks per alpha, so kMaxCrossStitchInputs alphas fill the partials workspace
// exactly (256 blocks: enough to keep every SM of a large GPU busy on the workload's 800k
// elements per alpha, which take 196).
constexpr int kAlphaThreads = 256;
constexpr int64_t kAlphaMinPerBlock = 16 * kAlphaThreads;
constexpr int64_t kAlphaMaxBlocks = kReduceWorkspace / kMaxCrossStitchInputs;

// float·float is exact in double: only the additions round.
struct Product {
  __device__ __forceinline__ double operator()(float x, float g) const {
    return double(x) * double(g);
  }
};

// Pass 1: grid (blocks, inputs). Block (b, s) sums x_s·dy over the grid-stride slice
// b·256 + t, + blocks·256, ... in order per thread, then the block tree; thread 0 stores the
// block's partial, or, when the grid has one block per alpha, writes dalpha[s] itself.
template <bool kAccumulate>
__global__ void __launch_bounds__(kAlphaThreads)
    alpha_partials_kernel(int64_t count, StitchInputs xs, const float* __restrict__ dy,
                          double* __restrict__ partials, float* __restrict__ dalpha) {
  __shared__ double scratch[kAlphaThreads / 32];
  const unsigned s = blockIdx.y;
  double sum = detail::grid_stride_sum(count, xs.x[s], dy, Product{});
  sum = detail::block_allreduce<kAlphaThreads>(sum, detail::SumOp{}, scratch);
  if (threadIdx.x != 0) return;
  if (gridDim.x == 1)
    write_grad<kAccumulate>(dalpha + s, float(sum));
  else
    partials[int64_t(s) * gridDim.x + blockIdx.x] = sum;
}

// Pass 2: one block per alpha combines its `blocks` partials (thread t takes t, t + 256, ... in
// order, then the block tree) and writes dalpha[s].
template <bool kAccumulate>
__global__ void __launch_bounds__(kAlphaThreads)
    alpha_finish_kernel(int blocks, const double* __restrict__ partials,
                        float* __restrict__ dalpha) {
  __shared__ double scratch[kAlphaThreads / 32];
  const unsigned s = blockIdx.x;
  double sum = 0.0;
  for (int b = int(threadIdx.x); b < blocks; b += kAlphaThreads)
    sum += partials[int64_t(s) * blocks + b];
  sum = detail::block_allreduce<kAlphaThreads>(sum, detail::SumOp{}, scratch);
  if (threadIdx.x == 0) write_grad<kAccumulate>(dalpha + s, float(sum));
}

StitchInputs stitch_inputs(const char* op, int inputs, const float* const* xs) {
  if (inputs < 1 || inputs > kMaxCrossStitchInputs)
    fail(op, ": ", inputs, " inputs; the CUDA kernel takes 1 to ", kMaxCrossStitchInputs);
  StitchInputs out{};
  out.count = inputs;
  for (int s = 0; s < inputs; ++s) out.x[s] = xs[s];
  return out;
}

void check_shape(const char* op, const MixtureShape& s) {
  if (s.rows < 0 || s.experts < 0 || s.width < 0)
    fail(op, ": negative shape (", s.rows, ", ", s.experts, ", ", s.width, ")");
}

}  // namespace

void softmax_forward(int64_t rows, int64_t features, const float* x, float* y, Stream stream) {
  if (rows <= 0 || features <= 0) return;
  detail::with_row_threads(features, [&](auto row_threads) {
    constexpr int kRowThreads = decltype(row_threads)::value;
    launch("softmax_forward", softmax_forward_kernel<kRowThreads>,
           detail::row_blocks(rows, kRowThreads), kThreads, 0, stream, rows, features, x, y);
  });
}

void softmax_backward(int64_t rows, int64_t features, const float* y, const float* dy, float* dx,
                      GradMode mode, Stream stream) {
  if (rows <= 0 || features <= 0) return;
  detail::with_row_threads(features, [&](auto row_threads) {
    constexpr int kRowThreads = decltype(row_threads)::value;
    const unsigned blocks = detail::row_blocks(rows, kRowThreads);
    if (mode == GradMode::Accumulate)
      launch("softmax_backward", softmax_backward_kernel<kRowThreads, true>, blocks, kThreads, 0,
             stream, rows, features, y, dy, dx);
    else
      launch("softmax_backward", softmax_backward_kernel<kRowThreads, false>, blocks, kThreads, 0,
             stream, rows, features, y, dy, dx);
  });
}

void mixture_forward(const MixtureShape& s, const float* experts, const float* gate, float* y,
                     Stream stream) {
  check_shape("mixture_forward", s);
  if (s.rows == 0 || s.width == 0) return;
  launch("mixture_forward", mixture_forward_kernel, blocks_for(s.rows * s.width, kFlatThreads),
         kFlatThreads, 0, stream, s, experts, gate, y);
}

void mixture_backward(const MixtureShape& s, const float* experts, const float* gate,
                      const float* dy, float* dexperts, GradMode experts_mode, float* dgate,
                      GradMode gate_mode, Stream stream) {
  check_shape("mixture_backward", s);
  if (s.rows == 0 || s.experts == 0) return;
  // The experts' gradient first: when one buffer is both gradients (the same value passed as
  // experts and gate, width 1), the gate's Accumulate then adds to it.
  if (dexperts != nullptr && s.width > 0) {
    const unsigned blocks = blocks_for(s.rows * s.experts * s.width, kFlatThreads);
    if (experts_mode == GradMode::Accumulate)
      launch("mixture_backward", mixture_experts_grad_kernel<true>, blocks, kFlatThreads, 0, stream,
             s, gate, dy, dexperts);
    else
      launch("mixture_backward", mixture_experts_grad_kernel<false>, blocks, kFlatThreads, 0,
             stream, s, gate, dy, dexperts);
  }
  if (dgate == nullptr) return;
  // Width 0 still writes the gate gradient (zeros), as the CPU does; the row groups take it.
  detail::with_row_threads(s.width, [&](auto row_threads) {
    constexpr int kRowThreads = decltype(row_threads)::value;
    const unsigned blocks = detail::row_blocks(s.rows * s.experts, kRowThreads);
    if (gate_mode == GradMode::Accumulate)
      launch("mixture_backward", mixture_gate_grad_kernel<kRowThreads, true>, blocks, kThreads, 0,
             stream, s, experts, dy, dgate);
    else
      launch("mixture_backward", mixture_gate_grad_kernel<kRowThreads, false>, blocks, kThreads, 0,
             stream, s, experts, dy, dgate);
  });
}

void cross_stitch_forward(int64_t count, int inputs, const float* const* xs, const float* alpha,
                          float* y, Stream stream) {
  const StitchInputs args = stitch_inputs("cross_stitch_forward", inputs, xs);
  if (count <= 0) return;
  launch("cross_stitch_forward", cross_stitch_forward_kernel, blocks_for(count, kFlatThreads),
         kFlatThreads, 0, stream, count, args, alpha, y);
}

void cross_stitch_backward_input(int64_t count, const float* alpha, int input, const float* dy,
                                 float* dx, GradMode mode, Stream stream) {
  if (input < 0 || input >= kMaxCrossStitchInputs)
    fail("cross_stitch_backward_input: input ", input, " is outside [0, ", kMaxCrossStitchInputs,
         ")");
  if (count <= 0) return;
  const unsigned blocks = blocks_for(count, kFlatThreads);
  if (mode == GradMode::Accumulate)
    launch("cross_stitch_backward_input", cross_stitch_input_grad_kernel<true>, blocks,
           kFlatThreads, 0, stream, count, alpha, input, dy, dx);
  else
    launch("cross_stitch_backward_input", cross_stitch_input_grad_kernel<false>, blocks,
           kFlatThreads, 0, stream, count, alpha, input, dy, dx);
}

void cross_stitch_backward_alpha(int64_t count, int inputs, const float* const* xs, const float* dy,
                                 float* dalpha, GradMode mode, double* partials, Stream stream) {
  const StitchInputs args = stitch_inputs("cross_stitch_backward_alpha", inputs, xs);
  if (count < 0) count = 0;
  // The grid depends on the sizes alone, which is what makes the bits reproducible.
  int64_t blocks = (count + kAlphaMinPerBlock - 1) / kAlphaMinPerBlock;
  blocks = blocks < 1 ? 1 : (blocks > kAlphaMaxBlocks ? kAlphaMaxBlocks : blocks);
  const dim3 grid{unsigned(blocks), unsigned(inputs)};
  const char* op = "cross_stitch_backward_alpha";
  if (mode == GradMode::Accumulate)
    launch(op, alpha_partials_kernel<true>, grid, kAlphaThreads, 0, stream, count, args, dy,
           partials, dalpha);
  else
    launch(op, alpha_partials_kernel<false>, grid, kAlphaThreads, 0, stream, count, args, dy,
           partials, dalpha);
  if (blocks == 1) return;
  if (mode == GradMode::Accumulate)
    launch(op, alpha_finish_kernel<true>, dim3(unsigned(inputs)), kAlphaThreads, 0, stream,
           int(blocks), partials, dalpha);
  else
    launch(op, alpha_finish_kernel<false>, dim3(unsigned(inputs)), kAlphaThreads, 0, stream,
           int(blocks), partials, dalpha);
}

}  // namespace polytask::kernels::cuda
