// Soft parameter sharing (Duong et al. 2015; Ruder 2017, "An Overview of Multi-Task Learning in
// Deep Neural Networks", §3.2): each task has its own copy of a layer, and an L2 penalty pulls
// corresponding parameters of the copies together,
//
//   P = (λ/2) · Σ_{i<j} ‖W_i − W_j‖²        over the M copies W_0 … W_{M-1} of one parameter,
//   ∂P/∂W_i = λ · Σ_{j≠i} (W_i − W_j) = λ · (M·W_i − Σ_j W_j).
//
// The gradient is added to the copies' gradients after the network's backward, so it is part
// of every step, on the CPU and on the GPU (inside the step's CUDA graph).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace polytask::kernels {

// At most this many copies of one parameter (one per task).
inline constexpr int kMaxSoftSharedCopies = 16;

namespace cpu {

// grads[i][e] += strength · (members·values[i][e] − Σ_j values[j][e]) for e < count, i < members.
// The sum is taken in index order. values and grads are arrays of `members` pointers.
template <class T>
void soft_sharing_gradient(int64_t count, int members, const T* const* values, T* const* grads,
                           T strength);

// P = (strength/2) · Σ_{i<j} Σ_e (values[i][e] − values[j][e])², accumulated in double.
template <class T>
double soft_sharing_penalty(int64_t count, int members, const T* const* values, double strength);

}  // namespace cpu

namespace cuda {

// The same gradient on the device: one pass, each element read once per copy; the sum in index
// order in float, as on the CPU, so the results equal the CPU reference's up to the fused
// multiply-add nvcc forms. values/grads: host arrays of `members` device pointers;
// 1 <= members <= kMaxSoftSharedCopies, else polytask::Error.
void soft_sharing_gradient(int64_t count, int members, const float* const* values,
                           float* const* grads, float strength, Stream stream);

}  // namespace cuda
}  // namespace polytask::kernels
