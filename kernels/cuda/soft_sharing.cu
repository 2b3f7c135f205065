// The soft-sharing gradient (kernels/soft_sharing.h) on the device: memory-bound, one thread per
// element over a grid-stride loop, the copies' pointers passed by value.
#include "kernels/cuda/grid_stride.h"
#include "kernels/cuda/launch.h"
#include "kernels/error.h"
#include "kernels/soft_sharing.h"

namespace polytask::kernels::cuda {

namespace {

using detail::global_thread;
using detail::grid_threads;
using detail::kFlatThreads;

struct Copies {
  const float* value[kMaxSoftSharedCopies];
  float* grad[kMaxSoftSharedCopies];
  int count;
};

// The copy loops are unrolled to the maximum with a guard, so every parameter access has a
// constant index (a variable index into kernel parameters spills them to local memory).
__global__ void __launch_bounds__(kFlatThreads)
    soft_sharing_gradient_kernel(int64_t count, Copies copies, float strength) {
  for (int64_t e = global_thread(); e < count; e += grid_threads()) {
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxSoftSharedCopies; ++j)
      if (j < copies.count) sum += copies.value[j][e];
    const float m = float(copies.count);
#pragma unroll
    for (int i = 0; i < kMaxSoftSharedCopies; ++i)
      if (i < copies.count) copies.grad[i][e] += strength * (m * copies.value[i][e] - sum);
  }
}

}  // namespace

void soft_sharing_gradient(int64_t count, int members, const float* const* values,
                           float* const* grads, float strength, Stream stream) {
  if (members < 1 || members > kMaxSoftSharedCopies)
    fail("soft sharing: ", members, " copies; the CUDA kernel takes 1 to ", kMaxSoftSharedCopies);
  if (count <= 0) return;
  Copies copies{};
  copies.count = members;
  for (int i = 0; i < members; ++i) copies.value[i] = values[i], copies.grad[i] = grads[i];
  launch("soft_sharing_gradient", soft_sharing_gradient_kernel, blocks_for(count, kFlatThreads),
         kFlatThreads, 0, stream, count, copies, strength);
}

}  // namespace polytask::kernels::cuda
