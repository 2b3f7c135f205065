// Device-side pieces of the deterministic two-pass reductions of kernels/reduce.h, shared by
// reduce.cu, loss.cu and metrics.cu: fixed-order reductions across a lane group, a warp and a
// block, and the one-block second pass. Every combination order depends only on the launch
// shape, never on timing. Only .cu files include this (it needs nvcc or the emulator).
#pragma once

#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/reduce.h"

namespace polytask::kernels::cuda::detail {

inline constexpr unsigned kFullMask = 0xffffffffu;

struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {  // NaN-ignoring, like fmaxf; callers that must see NaN track it separately
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MinOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return b < a ? b : a;
  }
};

// Combines v across each aligned group of kWidth lanes (a power of two, at most 32) with a
// butterfly. Every lane of a group ends with the same bits: each step combines the same two
// partial results (op(a, b) on one lane, op(b, a) on its partner; + and min are commutative).
// All 32 lanes of the warp must call it.
template <int kWidth, class T, class Op>
__device__ __forceinline__ T lanes_allreduce(T v, Op op) {
  static_assert(kWidth >= 1 && kWidth <= 32 && (kWidth & (kWidth - 1)) == 0);
#pragma unroll
  for (int offset = kWidth / 2; offset > 0; offset /= 2)
    v = op(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// The same across a block of kThreads (a multiple of 32): warps first, then the warp results in
// warp order. Every thread gets the result. scratch: kThreads / 32 elements of __shared__
// memory declared by the calling kernel (the emulator supports only kernel-body __shared__
// arrays); it may be reused as soon as this returns. All threads of the block must call it.
template <int kThreads, class T, class Op>
__device__ __forceinline__ T block_allreduce(T v, Op op, T* scratch) {
  static_assert(kThreads % 32 == 0);
  v = lanes_allreduce<32>(v, op);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  T total = scratch[0];
#pragma unroll
  for (int w = 1; w < kThreads / 32; ++w) total = op(total, scratch[w]);
  // No warp may overwrite scratch (in a following reduction) before every warp has read it.
  // The emulator cannot show this barrier missing: its threads all read before any writes.
  __syncthreads();
  return total;
}

// A reduction over the kRowThreads threads that share one row: a lane group within a warp, or
// the whole block when kRowThreads == kThreads.
template <int kRowThreads, int kThreads, class T, class Op>
__device__ __forceinline__ T row_allreduce(T v, Op op, T* scratch) {
  if constexpr (kRowThreads <= 32) {
    return lanes_allreduce<kRowThreads>(v, op);
  } else {
    static_assert(kRowThreads == kThreads, "a row spans one lane group or the whole block");
    return block_allreduce<kThreads>(v, op, scratch);
  }
}

// ---- the two passes ---------------------------------------------------------------------------
//
// A reduction's result is handed to a Finish functor: `__device__ void operator()(double sum,
// double low) const`, where sum combines the per-block sums and low the per-block minima (only
// when Finish::kTracksMinimum; kNoMinimum otherwise). It runs once, on one thread.

// The minimum of no values: larger than any row index a kernel reports through it.
inline constexpr double kNoMinimum = 1e300;

// Blocks for a first pass over `work` items when a block should take at least
// `min_items_per_block` of them: enough to fill the GPU, never more than kReduceBlocks. The
// answer depends only on the sizes, which is what makes the results reproducible.
inline unsigned reduce_blocks(int64_t work, int64_t min_items_per_block) {
  const int64_t blocks = (work + min_items_per_block - 1) / min_items_per_block;
  return unsigned(blocks < 1 ? 1 : (blocks > kReduceBlocks ? kReduceBlocks : blocks));
}

// The end of a first pass, on thread 0 of each block: store this block's partial sum (and
// minimum) for the second pass, or, when the grid is a single block, finish right here.
template <class Finish>
__device__ __forceinline__ void end_first_pass(double sum, double low, double* partials,
                                               const Finish& finish) {
  if (threadIdx.x != 0) return;
  if (gridDim.x == 1) {
    finish(sum, low);
    return;
  }
  partials[blockIdx.x] = sum;
  if constexpr (Finish::kTracksMinimum) partials[kReduceBlocks + blockIdx.x] = low;
}

inline constexpr unsigned kFinishThreads = 256;

// The second pass: one block combines partials[0, blocks) — thread t sums t, t + 256, ... in
// order, then the block tree — and finishes.
template <class Finish>
static __global__ void __launch_bounds__(kFinishThreads)
    finish_kernel(int blocks, const double* __restrict__ partials, Finish finish) {
  __shared__ double scratch[kFinishThreads / 32];
  double sum = 0.0, low = kNoMinimum;
  for (int b = int(threadIdx.x); b < blocks; b += int(kFinishThreads)) {
    sum += partials[b];
    if constexpr (Finish::kTracksMinimum) low = MinOp{}(low, partials[kReduceBlocks + b]);
  }
  sum = block_allreduce<int(kFinishThreads)>(sum, SumOp{}, scratch);
  if constexpr (Finish::kTracksMinimum)
    low = block_allreduce<int(kFinishThreads)>(low, MinOp{}, scratch);
  if (threadIdx.x == 0) finish(sum, low);
}

// Host side: launches the second pass when the first pass had more than one block.
template <class Finish>
void finish_reduction(const char* op, unsigned first_pass_blocks, const double* partials,
                      const Finish& finish, Stream stream) {
  if (first_pass_blocks <= 1) return;
  launch(op, finish_kernel<Finish>, dim3(1), dim3(kFinishThreads), 0, stream,
         int(first_pass_blocks), partials, finish);
}

}  // namespace polytask::kernels::cuda::detail
