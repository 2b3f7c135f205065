// Grid-stride indexing and the float4 split shared by the flat, memory-bound kernels
// (elementwise.cu, optimizer.cu). Only .cu files include this: it needs the CUDA language
// (nvcc, or the emulator under POLYTASK_CUDA_EMULATION).
#pragma once

#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/launch.h"

namespace polytask::kernels::cuda::detail {

// Threads per block of the flat kernels: 8 warps, enough to hide latency at full occupancy on
// sm_80/sm_90 (8 blocks of 256 fill an SM's 2048 threads).
inline constexpr unsigned kFlatThreads = 256;

__device__ __forceinline__ int64_t global_thread() {
  return int64_t(blockIdx.x) * int64_t(blockDim.x) + int64_t(threadIdx.x);
}
__device__ __forceinline__ int64_t grid_threads() {
  return int64_t(gridDim.x) * int64_t(blockDim.x);
}

// Σ term(a[i], b[i]) in double over this thread's elements i = global_thread() + k·grid_threads()
// < count, added in that order, with four elements' loads issued before their additions (so a
// thread keeps four pairs of loads in flight; the order and the result are the plain loop's).
template <class Term>
__device__ __forceinline__ double grid_stride_sum(int64_t count, const float* __restrict__ a,
                                                  const float* __restrict__ b, Term term) {
  const int64_t stride = grid_threads();
  int64_t i = global_thread();
  double sum = 0.0;
  for (; i + 3 * stride < count; i += 4 * stride) {
    const float a0 = a[i], a1 = a[i + stride], a2 = a[i + 2 * stride], a3 = a[i + 3 * stride];
    const float b0 = b[i], b1 = b[i + stride], b2 = b[i + 2 * stride], b3 = b[i + 3 * stride];
    sum += term(a0, b0);
    sum += term(a1, b1);
    sum += term(a2, b2);
    sum += term(a3, b3);
  }
  for (; i < count; i += stride) sum += term(a[i], b[i]);
  return sum;
}

// How a flat range [0, count) is walked with 16-byte float4 accesses: `head` scalar elements up
// to the first 16-byte boundary, then `quads` float4s, then the scalar rest. float4 needs every
// array to sit at the same offset from a 16-byte boundary (the common case: slices of one flat
// buffer, or cudaMalloc'd arrays, which are 256-byte aligned); when they do not, everything is
// scalar (quads = 0). The split changes only which instruction moves an element, never the
// arithmetic, so the results are the same bits either way.
struct VectorSplit {
  int64_t head = 0;
  int64_t quads = 0;
  int64_t scalars = 0;  // head + the tail after the quads

  // The element index of the k-th scalar (k < scalars): the head first, then the tail.
  __device__ __forceinline__ int64_t scalar_index(int64_t k) const {
    return k < head ? k : k + 4 * quads;
  }
};

inline VectorSplit split_for_float4(int64_t count, std::initializer_list<const void*> arrays) {
  const uintptr_t offset = reinterpret_cast<uintptr_t>(*arrays.begin()) % 16u;
  bool shared_offset = offset % sizeof(float) == 0;
  for (const void* array : arrays)
    shared_offset = shared_offset && reinterpret_cast<uintptr_t>(array) % 16u == offset;
  if (!shared_offset) return {0, 0, count};
  int64_t head = offset == 0 ? 0 : int64_t((16u - offset) / sizeof(float));
  if (head > count) head = count;
  const int64_t quads = (count - head) / 4;
  return {head, quads, count - 4 * quads};
}

// Blocks for a flat kernel whose threads each take one float4 and at most one scalar per turn
// of the grid-stride loop.
inline unsigned flat_blocks(const VectorSplit& split) {
  return blocks_for(split.quads > split.scalars ? split.quads : split.scalars, kFlatThreads);
}

}  // namespace polytask::kernels::cuda::detail
