// Elementwise pieces every step needs: ReLU, the residual add, fill/copy, gradient
// pass-through, scaling, and feature-axis concat for multi-input models.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"

namespace polytask::kernels::cpu {

template <class T>
void fill(int64_t count, T value, T* y);

template <class T>
void copy(int64_t count, const T* x, T* y);

// y = max(x, 0). y may alias x.
template <class T>
void relu_forward(int64_t count, const T* x, T* y);

// dx = dy where y > 0, else 0 (the gradient at 0 is taken as 0, as in PyTorch and Keras).
template <class T>
void relu_backward(int64_t count, const T* y, const T* dy, T* dx, GradMode mode);

// y = a + b.
template <class T>
void add_forward(int64_t count, const T* a, const T* b, T* y);

// dx = scale * dy (used for the add's two inputs, flatten, and seeding scaled gradients).
template <class T>
void scale_grad(int64_t count, T scale, const T* dy, T* dx, GradMode mode);

// Concatenate inputs along the axis that splits each tensor into (outer, part_inner[i]):
// y (outer, Σ part_inner). For (N, C_i, H, W) along C, part_inner[i] = C_i·H·W; for (N, F_i)
// along F, part_inner[i] = F_i.
template <class T>
void concat_forward(int64_t outer, int num_parts, const int64_t* part_inner, const T* const* parts,
                    T* y);

// The inverse: each dparts[i] (outer, part_inner[i]) receives its slice of dy. A null
// dparts[i] is skipped (that input needs no gradient).
template <class T>
void concat_backward(int64_t outer, int num_parts, const int64_t* part_inner, const T* dy,
                     T* const* dparts, GradMode mode);

}  // namespace polytask::kernels::cpu

namespace polytask::kernels::cuda {

// The same ops on the device (kernels/cuda/elementwise.cu), float only, asynchronous on `stream`;
// every pointer is device memory unless marked host. Results equal the CPU reference's up to
// the fused multiply-add nvcc forms for `a·b + c` (scale_grad's Accumulate), i.e. within an ulp.
void fill(int64_t count, float value, float* y, Stream stream);
void copy(int64_t count, const float* x, float* y, Stream stream);
// y may alias x.
void relu_forward(int64_t count, const float* x, float* y, Stream stream);
void relu_backward(int64_t count, const float* y, const float* dy, float* dx, GradMode mode,
                   Stream stream);
void add_forward(int64_t count, const float* a, const float* b, float* y, Stream stream);
// dx = scale·dy, or dx += scale·dy (an axpy) with GradMode::Accumulate.
void scale_grad(int64_t count, float scale, const float* dy, float* dx, GradMode mode,
                Stream stream);

// Concat along the axis that splits each tensor into (outer, part_inner[i]), as cpu::. The part
// pointers and sizes travel to the kernel by value, so part_inner, parts and dparts are host
// arrays (of device pointers); 1 <= num_parts <= kMaxConcatParts, else polytask::Error.
inline constexpr int kMaxConcatParts = 8;
void concat_forward(int64_t outer, int num_parts, const int64_t* part_inner,
                    const float* const* parts, float* y, Stream stream);
// A null dparts[i] is skipped.
void concat_backward(int64_t outer, int num_parts, const int64_t* part_inner, const float* dy,
                     float* const* dparts, GradMode mode, Stream stream);

// y = Σ_p coefficients[p]·xs[p] over count elements in one pass (the fan-out's combine of the
// per-task gradients). Products and sums are taken in double, in part order (fma), and rounded
// to float once. xs: host array of `parts` device pointers (count each); coefficients: host
// array of `parts` floats. 0 <= parts <= kMaxWeightedSumParts, else polytask::Error; with no
// parts y is zero. y may alias one of the xs.
inline constexpr int kMaxWeightedSumParts = 16;
void weighted_sum(int64_t count, int parts, const float* const* xs, const float* coefficients,
                  float* y, Stream stream);
// The same with `coefficients` a device array, read when the kernel runs (a balancer's combine
// writes them on the device, inside a CUDA graph).
void weighted_sum_device_coefficients(int64_t count, int parts, const float* const* xs,
                                      const float* coefficients, float* y, Stream stream);

}  // namespace polytask::kernels::cuda
