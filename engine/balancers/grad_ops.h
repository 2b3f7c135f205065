// The few vector operations the balancers apply to per-task gradients at the fan-out, over
// whole (batch, *z) tensors of the network's dtype. Reductions accumulate in double in index
// order, so they are deterministic; CPU only for now (the CUDA build will put these on the
// device so a step needs no host round trip).
#pragma once

#include <span>

#include "engine/tensor.h"

namespace polytask::balancing {

// Σ_i a[i]·b[i] over all elements, accumulated in double.
double dot(const Tensor& a, const Tensor& b);
// y += alpha·x.
void axpy(double alpha, const Tensor& x, const Tensor& y);
// y = x.
void copy(const Tensor& x, const Tensor& y);
// out = Σ_t coefficients[t]·xs[t], in task order (each product and sum taken in double).
void weighted_sum(std::span<const double> coefficients, std::span<const Tensor> xs,
                  const Tensor& out);
// out = Σ_t xs[t] in task order with the fan-out's kernel: bit-identical to the plain sum the
// engine always made (the first term overwrites, the others accumulate).
void plain_sum(std::span<const Tensor> xs, const Tensor& out);

}  // namespace polytask::balancing
