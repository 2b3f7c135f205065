// Elementwise pieces every step needs: ReLU, the residual add, fill/copy, gradient
// pass-through, scaling, and feature-axis concat for multi-input models.
#pragma once

#include <cstdint>

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
