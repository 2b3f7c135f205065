// The few vector operations the balancers apply to per-task gradients at the fan-out, over
// whole (batch, *z) tensors of the network's dtype, on either device. Reductions accumulate in
// double in a fixed order (index order on the CPU, a fixed tree on the GPU), so they are
// deterministic.
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

// GPU only: out = Σ_t coefficients[t]·xs[t] with the coefficients (f32) read from device memory
// when the kernel runs; with coefficients of 1 bit-identical to plain_sum.
void weighted_sum_device_coefficients(const Tensor& coefficients, std::span<const Tensor> xs,
                                      const Tensor& out);

// GPU only, no read back: gram (T·T f64, device) receives the upper triangle of <xs_i, xs_j>
// (the rest is left as it is); then, once the ranks of a data-parallel step have summed it,
// the step's statistics are added to sums (kernels::GramStatisticsLayout, device).
void device_gram(std::span<const Tensor> xs, const Tensor& gram);
void device_add_gram_statistics(int tasks, const Tensor& gram, const Tensor& sums);

}  // namespace polytask::balancing
