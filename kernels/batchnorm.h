// Batch normalisation over the channel axis of (N, C, spatial) tensors: spatial = H·W for
// images after a convolution, 1 for (N, F) features after a dense layer.
//
// Semantics follow Keras' BatchNormalization, the users' mental model:
//  - training normalises with the batch mean and the biased batch variance;
//  - running averages update as  running = momentum · running + (1 - momentum) · batch,
//    with the biased batch variance, default momentum 0.99 and eps 1e-3
//    (PyTorch users: momentum_torch = 1 - momentum; PyTorch also keeps the unbiased variance);
//  - inference normalises with the running averages.
#pragma once

#include <cstdint>

#include "kernels/grad_mode.h"

namespace polytask::kernels {

struct BatchNormShape {
  int64_t n = 0, c = 0, spatial = 1;
};

namespace cpu {

// y = gamma · (x - mean) / sqrt(var + eps) + beta with batch statistics. save_mean and
// save_invstd (C) receive the batch mean and 1/sqrt(var + eps) for backward; running_mean and
// running_var (C) are updated in place.
template <class T>
void batchnorm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             T eps, T momentum, T* y, T* save_mean, T* save_invstd,
                             T* running_mean, T* running_var);

// y = gamma · (x - running_mean) / sqrt(running_var + eps) + beta.
template <class T>
void batchnorm_forward_infer(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps, T* y);

// Gradients of the training-mode forward. dx may be nullptr (input needs no gradient);
// dgamma and dbeta follow mode like dx.
template <class T>
void batchnorm_backward(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                        const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta,
                        GradMode mode);

}  // namespace cpu
}  // namespace polytask::kernels
