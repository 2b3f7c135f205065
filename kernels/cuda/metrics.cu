// CUDA versions of the metrics (kernels/metrics.h): per-row argmax by row groups
// (kernels/cuda/row_groups.h) and flat counts, summed per block in a fixed order and across
// blocks by the shared second pass, which adds the batch's sum to the caller's running total.
#include "kernels/cuda/block_reduce.h"
#include "kernels/cuda/grid_stride.h"
#include "kernels/cuda/row_groups.h"
#include "kernels/metrics.h"

namespace polytask::kernels::cuda {

namespace {

using detail::global_thread;
using detail::grid_threads;
using detail::kRowBlockThreads;

constexpr int kThreads = kRowBlockThreads;
constexpr int64_t kFlatMinPerBlock = 16 * kThreads;

struct AddToTotal {
  static constexpr bool kTracksMinimum = false;
  double* total;
  __device__ void operator()(double sum, double) const { *total += sum; }
};

__device__ __forceinline__ bool is_nan(float v) { return v != v; }

// ---- argmax as one max-reduction ----------------------------------------------------------------
//
// A candidate (value, column) becomes one 64-bit key whose unsigned order is "larger value
// first, then smaller column": the float's bits made order-preserving in the high word, the
// complemented column in the low word. The row's argmax is then a plain max over keys — one
// shuffle chain, and ties resolve to the first maximum whatever order lanes combine in.
// Key 0 means "no column" (an empty row); kNanKey, above every real key, marks a row holding a
// NaN, which predicts nothing (as the CPU reference's argmax_or_invalid).
using Key = unsigned long long;
constexpr Key kNanKey = ~Key(0);

struct MaxKeyOp {
  __device__ __forceinline__ Key operator()(Key a, Key b) const { return a < b ? b : a; }
};

__device__ __forceinline__ Key argmax_key(float value, int64_t column) {
  if (is_nan(value)) return kNanKey;
  if (value == 0.0f) value = 0.0f;  // -0 ties with +0, as the comparison `>` sees them
  const unsigned bits = __float_as_uint(value);
  const unsigned ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (Key(ordered) << 32) | Key(0xffffffffu - unsigned(column));
}

// The argmax of one row for the row group, or -1 when the row is empty or holds a NaN. Every
// thread of the block must call it (it shuffles and, for block-wide rows, synchronises).
template <int kRowThreads>
__device__ __forceinline__ int64_t row_argmax(bool active, const float* __restrict__ row,
                                              int64_t classes, int lane, Key* scratch) {
  Key best = 0;
  if (active)
    detail::for_each_column<kRowThreads>(row, classes, lane, [&](int64_t j, float v) {
      const Key key = argmax_key(v, j);
      best = key > best ? key : best;
    });
  best = detail::row_allreduce<kRowThreads, kThreads>(best, MaxKeyOp{}, scratch);
  if (best == 0 || best == kNanKey) return -1;
  return int64_t(0xffffffffu - unsigned(best & 0xffffffffu));
}

// Counts rows whose score argmax equals the label (labels) or the target row's argmax
// (targets, when kTargets).
template <int kRowThreads, bool kTargets>
__global__ void __launch_bounds__(kThreads)
    count_correct_kernel(int64_t rows, int64_t classes, const float* __restrict__ scores,
                         const int32_t* __restrict__ labels, const float* __restrict__ targets,
                         double* __restrict__ partials, AddToTotal finish) {
  __shared__ Key key_scratch[kThreads / 32];
  __shared__ double sum_scratch[kThreads / 32];
  constexpr int kRowsPerTurn = kThreads / kRowThreads;
  const int lane = int(threadIdx.x) % kRowThreads;
  const int group = int(threadIdx.x) / kRowThreads;
  double correct = 0.0;
  for (int64_t first = int64_t(blockIdx.x) * kRowsPerTurn; first < rows;
       first += int64_t(gridDim.x) * kRowsPerTurn) {
    const int64_t row = first + group;
    const bool active = row < rows;
    const int64_t base = (active ? row : 0) * classes;
    const int64_t predicted =
        row_argmax<kRowThreads>(active, scores + base, classes, lane, key_scratch);
    int64_t label = -1;
    if constexpr (kTargets)
      label = row_argmax<kRowThreads>(active, targets + base, classes, lane, key_scratch);
    else if (active && lane == 0)
      label = labels[row];  // out of range never equals a prediction, so it counts as wrong
    if (active && lane == 0 && predicted >= 0 && predicted == label) correct += 1.0;
  }
  correct = detail::block_allreduce<kThreads>(correct, detail::SumOp{}, sum_scratch);
  detail::end_first_pass(correct, detail::kNoMinimum, partials, finish);
}

// ---- flat metrics -------------------------------------------------------------------------------

struct BinaryCorrect {  // logit > 0 predicts 1; a target > 0.5 is 1; NaN is never correct
  __device__ __forceinline__ double operator()(float logit, float target) const {
    if (is_nan(logit) || is_nan(target)) return 0.0;
    return (logit > 0.0f) == (target > 0.5f) ? 1.0 : 0.0;
  }
};
struct AbsError {  // NaN propagates on purpose, as on the CPU
  __device__ __forceinline__ double operator()(float pred, float target) const {
    return fabs(double(pred) - double(target));
  }
};

template <class Term>
__global__ void __launch_bounds__(kThreads)
    flat_sum_kernel(int64_t count, const float* __restrict__ a, const float* __restrict__ b,
                    double* __restrict__ partials, AddToTotal finish, Term term) {
  __shared__ double scratch[kThreads / 32];
  double sum = detail::grid_stride_sum(count, a, b, term);
  sum = detail::block_allreduce<kThreads>(sum, detail::SumOp{}, scratch);
  detail::end_first_pass(sum, detail::kNoMinimum, partials, finish);
}

template <bool kTargets>
void count_correct_rows(const char* op, int64_t rows, int64_t classes, const float* scores,
                        const int32_t* labels, const float* targets, double* total,
                        double* partials, Stream stream) {
  if (rows < 0 || classes < 0) fail(op, ": negative shape (", rows, ", ", classes, ")");
  if (classes > int64_t(0xfffffffe)) fail(op, ": ", classes, " classes is more than supported");
  if (rows == 0) return;
  const AddToTotal finish{total};
  detail::with_row_threads(classes, [&](auto row_threads) {
    constexpr int kRowThreads = decltype(row_threads)::value;
    const unsigned blocks = detail::row_blocks(rows, kRowThreads);
    launch(op, count_correct_kernel<kRowThreads, kTargets>, blocks, kThreads, 0, stream, rows,
           classes, scores, labels, targets, partials, finish);
    detail::finish_reduction(op, blocks, partials, finish, stream);
  });
}

template <class Term>
void flat_sum(const char* op, int64_t count, const float* a, const float* b, double* total,
              double* partials, Stream stream) {
  if (count <= 0) return;
  const AddToTotal finish{total};
  const unsigned blocks = detail::reduce_blocks(count, kFlatMinPerBlock);
  launch(op, flat_sum_kernel<Term>, blocks, kThreads, 0, stream, count, a, b, partials, finish,
         Term{});
  detail::finish_reduction(op, blocks, partials, finish, stream);
}

}  // namespace

void count_correct(int64_t rows, int64_t classes, const float* scores, const int32_t* labels,
                   double* total, double* partials, Stream stream) {
  count_correct_rows<false>("count_correct", rows, classes, scores, labels, nullptr, total,
                            partials, stream);
}

void count_correct_targets(int64_t rows, int64_t classes, const float* scores, const float* targets,
                           double* total, double* partials, Stream stream) {
  count_correct_rows<true>("count_correct_targets", rows, classes, scores, nullptr, targets, total,
                           partials, stream);
}

void count_correct_binary(int64_t count, const float* logits, const float* targets, double* total,
                          double* partials, Stream stream) {
  flat_sum<BinaryCorrect>("count_correct_binary", count, logits, targets, total, partials, stream);
}

void sum_abs_error(int64_t count, const float* pred, const float* target, double* total,
                   double* partials, Stream stream) {
  flat_sum<AbsError>("sum_abs_error", count, pred, target, total, partials, stream);
}

}  // namespace polytask::kernels::cuda
