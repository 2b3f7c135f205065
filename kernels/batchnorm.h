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

#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"
#include "kernels/reduce.h"

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

namespace cuda {

// The device versions (kernels/cuda/batchnorm.cu), float only, asynchronous on `stream`; every
// pointer is device memory, y may alias x (and dx dy). The semantics are the CPU reference's
// (Keras momentum, biased variance in the running average); so is the precision: statistics
// and every per-element formula are evaluated in double and rounded to float once, so results
// agree with the CPU within about an ulp.
//
// The per-channel sums are deterministic (a fixed-order tree, no atomics): a channel is reduced
// by one block, or, when it is large and there are few channels, by several blocks whose
// per-block partials go through `partials` (kReduceWorkspace doubles, kernels/reduce.h; the
// stream's shared reduction workspace; no initialisation needed). Statistics are sums of
// (x - x₀) and (x - x₀)² in double, x₀ the channel's first element, so a mean far from zero
// costs no digits. A shape with n·spatial == 0 leaves everything untouched, as on the CPU.
void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, float eps, float momentum, float* y,
                             float* save_mean, float* save_invstd, float* running_mean,
                             float* running_var, double* partials, Stream stream);

void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                             const float* beta, const float* running_mean,
                             const float* running_var, float eps, float* y, Stream stream);

// dx, dgamma and dbeta may each be nullptr (that gradient is not wanted); all follow `mode`.
// partials: as for forward.
void batchnorm_backward(const BatchNormShape& s, const float* x, const float* dy,
                        const float* gamma, const float* save_mean, const float* save_invstd,
                        float* dx, float* dgamma, float* dbeta, GradMode mode, double* partials,
                        Stream stream);

}  // namespace cuda
}  // namespace polytask::kernels
