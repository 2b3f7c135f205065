// How the per-row kernels (softmax losses, argmax metrics) map (rows, classes) onto threads:
// each row belongs to a group of kRowThreads consecutive threads that stride over its classes
// and combine their results with shuffles — 4, 8 or 16 lanes for narrow rows (so a 10-class
// row does not leave 22 lanes of a warp idle), a warp for up to 1024 classes, the whole block
// beyond. Blocks take kRowsPerTurn = 256 / kRowThreads rows per turn of a grid-stride loop over
// rows; the loop bound is uniform across the block, so every thread reaches every shuffle and
// barrier, including the groups whose row lies past the end. Only .cu files include this.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/block_reduce.h"

namespace polytask::kernels::cuda::detail {

inline constexpr int kRowBlockThreads = 256;

// Calls f(std::integral_constant<int, kRowThreads>{}) with the group width for `classes`.
template <class F>
void with_row_threads(int64_t classes, F&& f) {
  if (classes <= 4)
    f(std::integral_constant<int, 4>{});
  else if (classes <= 8)
    f(std::integral_constant<int, 8>{});
  else if (classes <= 16)
    f(std::integral_constant<int, 16>{});
  else if (classes <= 1024)
    f(std::integral_constant<int, 32>{});
  else
    f(std::integral_constant<int, kRowBlockThreads>{});
}

// Calls f(j, row[j]) for this lane's columns j = lane, lane + kRowThreads, ... < classes, in
// that order, loading four at a time: a lane keeps four loads in flight instead of stalling on
// each before issuing the next (the combining order, and so the result, is the plain loop's).
template <int kRowThreads, class F>
__device__ __forceinline__ void for_each_column(const float* __restrict__ row, int64_t classes,
                                                int lane, F&& f) {
  int64_t j = lane;
  for (; j + 3 * kRowThreads < classes; j += 4 * kRowThreads) {
    const float v0 = row[j], v1 = row[j + kRowThreads], v2 = row[j + 2 * kRowThreads],
                v3 = row[j + 3 * kRowThreads];
    f(j, v0);
    f(j + kRowThreads, v1);
    f(j + 2 * kRowThreads, v2);
    f(j + 3 * kRowThreads, v3);
  }
  for (; j < classes; j += kRowThreads) f(j, row[j]);
}

// Blocks for a per-row kernel: one turn of kRowsPerTurn rows each at least, at most
// kReduceBlocks (the partials a reducing kernel may write).
inline unsigned row_blocks(int64_t rows, int row_threads) {
  return reduce_blocks(rows, kRowBlockThreads / row_threads);
}

}  // namespace polytask::kernels::cuda::detail
