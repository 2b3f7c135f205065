// CUDA versions of the losses (kernels/loss.h).
//
// Softmax cross-entropy forward is one kernel pass per row: a row group
// (kernels/cuda/row_groups.h) reads the row once for its maximum and Σ exp(z - max) together
// (the online normaliser below), then again, from cache, to write the probabilities and form
// the row's loss term; the maximum is subtracted so that no exponent is positive. Row terms are
// summed in double per thread, then per block, then across blocks by the shared second pass —
// a fixed order, so the loss is reproducible to the bit. Backward passes are one read and one
// write per element. The flat losses (BCE, MSE) use a grid-stride loop.
//
// Precision against the CPU reference (which works in double): probabilities and gradients are
// float arithmetic, within a few ulps; row loss terms are float exp/log results combined in
// double. tests/cuda/test_loss.cpp states the bounds and their reasons.
#include <limits>

#include "kernels/cuda/block_reduce.h"
#include "kernels/cuda/grid_stride.h"
#include "kernels/cuda/occupancy.h"
#include "kernels/cuda/row_groups.h"
#include "kernels/loss.h"

namespace polytask::kernels::cuda {

namespace {

using detail::for_each_column;
using detail::global_thread;
using detail::grid_threads;
using detail::kRowBlockThreads;
using detail::row_allreduce;

constexpr int kThreads = kRowBlockThreads;
constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();
// A block of a flat reduction takes at least this many elements.
constexpr int64_t kFlatMinPerBlock = 16 * kThreads;

__device__ __forceinline__ double quiet_nan() { return double(__int_as_float(0x7fc00000)); }

template <bool kAccumulate>
__device__ __forceinline__ void write_grad(float* dst, float value) {
  if constexpr (kAccumulate)
    *dst += value;
  else
    *dst = value;
}

// Writes the mean of the reduced sum (and, for label losses, the first bad row).
struct MeanFinish {
  static constexpr bool kTracksMinimum = true;
  float* loss;
  int* bad_label_row;  // null when there are no labels, or the caller wants no report
  double count;        // the mean's divisor: rows or elements
  __device__ void operator()(double sum, double first_bad) const {
    *loss = count > 0.0 ? float(sum / count) : 0.0f;
    if (bad_label_row != nullptr) *bad_label_row = first_bad < count ? int(first_bad) : -1;
  }
};

// ---- softmax cross-entropy ----------------------------------------------------------------------

// The running (max, Σ e^(z - max)) of one lane's columns, updated one logit at a time (the
// "online" softmax normaliser): a new maximum rescales the sum, so one read of the row gives
// both, and the probabilities need only a second read (from cache). Special values end as the
// CPU reference's two-pass form ends: a NaN makes the sum NaN, -inf logits add 0, and a row of
// only -inf has sum 0 (its probabilities NaN).
struct RowNormaliser {
  float max = kNegativeInfinity;
  float sum = 0.0f;

  __device__ __forceinline__ void add(float z) {
    if (z > max) {
      sum = sum * expf(max - z) + 1.0f;  // sum is 0 while max is -inf: no NaN from -inf - -inf
      max = z;
    } else {
      sum += z == kNegativeInfinity ? 0.0f : expf(z - max);  // NaN z: NaN, as on the CPU
    }
  }
};

// Combines the lanes' normalisers of a row: the row maximum, then each lane's sum rescaled to
// it (a lane with sum 0 adds 0 whatever its max; a NaN sum stays NaN).
template <int kRowThreads>
__device__ __forceinline__ RowNormaliser combine_row(RowNormaliser mine, float* scratch) {
  RowNormaliser row;
  row.max = row_allreduce<kRowThreads, kThreads>(mine.max, detail::MaxOp{}, scratch);
  const float rescaled = mine.sum == 0.0f ? 0.0f : mine.sum * expf(mine.max - row.max);
  row.sum = row_allreduce<kRowThreads, kThreads>(rescaled, detail::SumOp{}, scratch);
  return row;
}

// 6 resident blocks an SM (75% occupancy) lets ptxas keep the forward kernel in 40 registers;
// left to itself it picks 32 and spills ~40 bytes a thread to local memory inside the row loop.
// A Turing SM holds only 4 blocks of 256 threads: as many as fit there.
constexpr int kForwardMinBlocks = min_blocks_per_sm(kThreads, 6);

// One turn per kRowsPerTurn rows; the row group of (lane, group) takes row first + group.
// With kTargets the row term is Σ t·(lse - z); otherwise it is lse - z[label].
template <int kRowThreads, bool kTargets>
__global__ void __launch_bounds__(kThreads, kForwardMinBlocks)
    softmax_ce_forward_kernel(int64_t rows, int64_t classes, const float* __restrict__ logits,
                              const int32_t* __restrict__ labels, const float* __restrict__ targets,
                              float* __restrict__ probs, double* __restrict__ partials,
                              MeanFinish finish) {
  __shared__ float float_scratch[kThreads / 32];
  __shared__ double double_scratch[kThreads / 32];
  constexpr int kRowsPerTurn = kThreads / kRowThreads;
  const int lane = int(threadIdx.x) % kRowThreads;
  const int group = int(threadIdx.x) / kRowThreads;
  double loss_sum = 0.0;                  // the row terms this thread holds (lane 0 only)
  double first_bad = detail::kNoMinimum;  // the smallest bad-label row it saw

  for (int64_t first = int64_t(blockIdx.x) * kRowsPerTurn; first < rows;
       first += int64_t(gridDim.x) * kRowsPerTurn) {
    const int64_t row = first + group;
    const bool active = row < rows;
    const int64_t base = (active ? row : 0) * classes;
    const float* __restrict__ z = logits + base;

    // The label and its logit are read before probs is written.
    bool label_ok = true;
    float z_label = 0.0f;
    if constexpr (!kTargets) {
      if (active && lane == 0) {
        const int32_t label = labels[row];
        label_ok = label >= 0 && label < classes;
        if (label_ok) z_label = z[label];
      }
    }

    RowNormaliser mine;
    if (active)
      for_each_column<kRowThreads>(z, classes, lane, [&](int64_t, float v) { mine.add(v); });
    const RowNormaliser norm = combine_row<kRowThreads>(mine, float_scratch);
    const float max = norm.max, sum = norm.sum;
    // lse - z = (max - z) + log(sum), formed in double so the loss term keeps float's digits
    // even when |max| is large.
    const double log_sum = double(logf(sum));

    double target_term = 0.0;
    if (active) {
      float* __restrict__ p = probs + base;
      for_each_column<kRowThreads>(z, classes, lane, [&](int64_t j, float v) {
        p[j] = expf(v - max) / sum;
        if constexpr (kTargets)
          target_term += double(targets[base + j]) * (double(max) - double(v) + log_sum);
      });
    }
    if constexpr (kTargets)
      target_term =
          row_allreduce<kRowThreads, kThreads>(target_term, detail::SumOp{}, double_scratch);

    if (active && lane == 0) {
      if constexpr (kTargets) {
        loss_sum += target_term;
      } else if (label_ok) {
        loss_sum += double(max) - double(z_label) + log_sum;
      } else {
        loss_sum += quiet_nan();
        if (double(row) < first_bad) first_bad = double(row);
      }
    }
  }

  loss_sum = detail::block_allreduce<kThreads>(loss_sum, detail::SumOp{}, double_scratch);
  first_bad = detail::block_allreduce<kThreads>(first_bad, detail::MinOp{}, double_scratch);
  detail::end_first_pass(loss_sum, first_bad, partials, finish);
}

// dz = factor·(p - onehot(label)), or with targets factor·(p·Σt - t), the exact gradient of
// Σ t·(lse - z) (the textbook p - t when a target row sums to 1).
// A backward pass's factor multiplier · seed / divisor, evaluated in double and rounded once —
// on the host for a seed given as a number, in the kernel for a seed in device memory (CUDA
// graphs freeze arguments at capture; the seed must still follow the balancer). Both give the
// same float for the same seed.
struct Factor {
  float host = 0.0f;
  const float* device = nullptr;
  double multiplier = 1.0, divisor = 1.0;

  static Factor of(LossScale scale, double multiplier, double divisor) {
    return {float(multiplier * double(scale.value) / divisor), scale.device, multiplier, divisor};
  }
  __device__ __forceinline__ float value() const {
    return device ? float(multiplier * double(*device) / divisor) : host;
  }
};

template <int kRowThreads, bool kTargets, bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    softmax_ce_backward_kernel(int64_t rows, int64_t classes, const float* __restrict__ probs,
                               const int32_t* __restrict__ labels,
                               const float* __restrict__ targets, Factor scale,
                               float* __restrict__ dlogits) {
  __shared__ double double_scratch[kThreads / 32];
  const float factor = scale.value();
  constexpr int kRowsPerTurn = kThreads / kRowThreads;
  const int lane = int(threadIdx.x) % kRowThreads;
  const int group = int(threadIdx.x) / kRowThreads;
  for (int64_t first = int64_t(blockIdx.x) * kRowsPerTurn; first < rows;
       first += int64_t(gridDim.x) * kRowsPerTurn) {
    const int64_t row = first + group;
    const bool active = row < rows;
    const int64_t base = (active ? row : 0) * classes;
    float* __restrict__ dz = dlogits + base;
    if constexpr (kTargets) {
      const float* __restrict__ t = targets + base;
      double target_sum = 0.0;
      if (active)
        for_each_column<kRowThreads>(t, classes, lane,
                                     [&](int64_t, float v) { target_sum += double(v); });
      target_sum =
          row_allreduce<kRowThreads, kThreads>(target_sum, detail::SumOp{}, double_scratch);
      const float t_sum = float(target_sum);
      if (active)
        for_each_column<kRowThreads>(probs + base, classes, lane, [&](int64_t j, float p) {
          write_grad<kAccumulate>(dz + j, factor * (p * t_sum - t[j]));
        });
    } else if (active) {
      // An out-of-range label matches no column: no out-of-bounds access, no one-hot term.
      const int64_t label = labels[row];
      for_each_column<kRowThreads>(probs + base, classes, lane, [&](int64_t j, float p) {
        write_grad<kAccumulate>(dz + j, factor * (p - (j == label ? 1.0f : 0.0f)));
      });
    }
  }
}

template <bool kTargets>
void softmax_ce_forward(const char* op, int64_t rows, int64_t classes, const float* logits,
                        const int32_t* labels, const float* targets, float* probs, float* loss,
                        int* bad_label_row, double* partials, Stream stream) {
  if (rows < 0 || classes < 0) fail(op, ": negative shape (", rows, ", ", classes, ")");
  const MeanFinish finish{loss, bad_label_row, double(rows)};
  detail::with_row_threads(classes, [&](auto row_threads) {
    constexpr int kRowThreads = decltype(row_threads)::value;
    const unsigned blocks = detail::row_blocks(rows, kRowThreads);
    launch(op, softmax_ce_forward_kernel<kRowThreads, kTargets>, blocks, kThreads, 0, stream, rows,
           classes, logits, labels, targets, probs, partials, finish);
    detail::finish_reduction(op, blocks, partials, finish, stream);
  });
}

template <bool kTargets>
void softmax_ce_backward(const char* op, int64_t rows, int64_t classes, const float* probs,
                         const int32_t* labels, const float* targets, LossScale scale,
                         float* dlogits, GradMode mode, Stream stream) {
  if (rows <= 0 || classes <= 0) return;
  const Factor factor = Factor::of(scale, 1.0, double(rows));
  detail::with_row_threads(classes, [&](auto row_threads) {
    constexpr int kRowThreads = decltype(row_threads)::value;
    // Backward writes nothing per block, so it may use more blocks than a reduction.
    const unsigned blocks = blocks_for(rows, kThreads / kRowThreads);
    if (mode == GradMode::Accumulate)
      launch(op, softmax_ce_backward_kernel<kRowThreads, kTargets, true>, blocks, kThreads, 0,
             stream, rows, classes, probs, labels, targets, factor, dlogits);
    else
      launch(op, softmax_ce_backward_kernel<kRowThreads, kTargets, false>, blocks, kThreads, 0,
             stream, rows, classes, probs, labels, targets, factor, dlogits);
  });
}

// ---- binary cross-entropy and mean squared error ----------------------------------------------

struct BceTerm {  // max(z, 0) - z·t + log(1 + e^-|z|): no exp of a positive number
  __device__ __forceinline__ double operator()(float z, float t) const {
    return double(fmaxf(z, 0.0f)) - double(z) * double(t) + double(log1pf(expf(-fabsf(z))));
  }
};
struct SquaredError {
  __device__ __forceinline__ double operator()(float p, float t) const {
    const double d = double(p) - double(t);
    return d * d;
  }
};

template <class Term>
__global__ void __launch_bounds__(kThreads)
    mean_forward_kernel(int64_t count, const float* __restrict__ a, const float* __restrict__ b,
                        double* __restrict__ partials, MeanFinish finish, Term term) {
  __shared__ double scratch[kThreads / 32];
  double sum = detail::grid_stride_sum(count, a, b, term);
  sum = detail::block_allreduce<kThreads>(sum, detail::SumOp{}, scratch);
  detail::end_first_pass(sum, detail::kNoMinimum, partials, finish);
}

struct BceGrad {  // σ(z) - t, with σ from e^-|z| so no exponent is positive
  __device__ __forceinline__ float operator()(float z, float t) const {
    const float e = expf(-fabsf(z));
    const float sigmoid = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    return sigmoid - t;
  }
};
struct Difference {
  __device__ __forceinline__ float operator()(float p, float t) const { return p - t; }
};

// dx = factor·grad(a, b), or dx += that.
template <class Grad, bool kAccumulate>
__global__ void __launch_bounds__(kThreads)
    scaled_grad_kernel(int64_t count, const float* __restrict__ a, const float* __restrict__ b,
                       Factor scale, float* __restrict__ dx, Grad grad) {
  const float factor = scale.value();
  for (int64_t i = global_thread(); i < count; i += grid_threads())
    write_grad<kAccumulate>(dx + i, factor * grad(a[i], b[i]));
}

template <class Term>
void mean_forward(const char* op, int64_t count, const float* a, const float* b, float* loss,
                  double* partials, Stream stream) {
  if (count < 0) count = 0;
  const MeanFinish finish{loss, nullptr, double(count)};
  const unsigned blocks = detail::reduce_blocks(count, kFlatMinPerBlock);
  launch(op, mean_forward_kernel<Term>, blocks, kThreads, 0, stream, count, a, b, partials, finish,
         Term{});
  detail::finish_reduction(op, blocks, partials, finish, stream);
}

template <class Grad>
void scaled_grad(const char* op, int64_t count, const float* a, const float* b, Factor factor,
                 float* dx, GradMode mode, Stream stream) {
  if (count <= 0) return;
  const unsigned blocks = blocks_for(count, kThreads);
  if (mode == GradMode::Accumulate)
    launch(op, scaled_grad_kernel<Grad, true>, blocks, kThreads, 0, stream, count, a, b, factor,
           dx, Grad{});
  else
    launch(op, scaled_grad_kernel<Grad, false>, blocks, kThreads, 0, stream, count, a, b, factor,
           dx, Grad{});
}

}  // namespace

void softmax_cross_entropy_forward(int64_t rows, int64_t classes, const float* logits,
                                   const int32_t* labels, float* probs, float* loss,
                                   int* bad_label_row, double* partials, Stream stream) {
  softmax_ce_forward<false>("softmax_cross_entropy_forward", rows, classes, logits, labels, nullptr,
                            probs, loss, bad_label_row, partials, stream);
}

void softmax_cross_entropy_backward(int64_t rows, int64_t classes, const float* probs,
                                    const int32_t* labels, LossScale scale, float* dlogits,
                                    GradMode mode, Stream stream) {
  softmax_ce_backward<false>("softmax_cross_entropy_backward", rows, classes, probs, labels,
                             nullptr, scale, dlogits, mode, stream);
}

void softmax_cross_entropy_targets_forward(int64_t rows, int64_t classes, const float* logits,
                                           const float* targets, float* probs, float* loss,
                                           double* partials, Stream stream) {
  softmax_ce_forward<true>("softmax_cross_entropy_targets_forward", rows, classes, logits, nullptr,
                           targets, probs, loss, nullptr, partials, stream);
}

void softmax_cross_entropy_targets_backward(int64_t rows, int64_t classes, const float* probs,
                                            const float* targets, LossScale scale, float* dlogits,
                                            GradMode mode, Stream stream) {
  softmax_ce_backward<true>("softmax_cross_entropy_targets_backward", rows, classes, probs, nullptr,
                            targets, scale, dlogits, mode, stream);
}

void binary_cross_entropy_forward(int64_t count, const float* logits, const float* targets,
                                  float* loss, double* partials, Stream stream) {
  mean_forward<BceTerm>("binary_cross_entropy_forward", count, logits, targets, loss, partials,
                        stream);
}

void binary_cross_entropy_backward(int64_t count, const float* logits, const float* targets,
                                   LossScale scale, float* dlogits, GradMode mode, Stream stream) {
  if (count <= 0) return;
  scaled_grad<BceGrad>("binary_cross_entropy_backward", count, logits, targets,
                       Factor::of(scale, 1.0, double(count)), dlogits, mode, stream);
}

void mse_forward(int64_t count, const float* pred, const float* target, float* loss,
                 double* partials, Stream stream) {
  mean_forward<SquaredError>("mse_forward", count, pred, target, loss, partials, stream);
}

void mse_backward(int64_t count, const float* pred, const float* target, LossScale scale,
                  float* dpred, GradMode mode, Stream stream) {
  if (count <= 0) return;
  scaled_grad<Difference>("mse_backward", count, pred, target,
                          Factor::of(scale, 2.0, double(count)), dpred, mode, stream);
}

}  // namespace polytask::kernels::cuda
