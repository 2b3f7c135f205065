// cuDNN max pooling and batch normalisation as a second oracle for the CUDA tests and the
// baseline for bench/gpu/bench_gpu_trunk_ops.cpp — never used by the engine. Compiled only when
// the build found cuDNN (POLYTASK_WITH_CUDNN). Every call is asynchronous on `stream` (bound to
// the handle for the call); pointers are device memory; shapes are ours (kernels/pool2d.h,
// kernels/batchnorm.h).
//
// What is and is not comparable with our kernels:
//  - Max pooling (CUDNN_POOLING_MAX_DETERMINISTIC, NaN propagated, no padding = Keras 'valid'):
//    forward returns only y — no argmax; backward recomputes the maxima from x and y, so on
//    ties it may send the gradient to a different element of the window than our first-in-
//    row-major argmax does. Compare y always, dx on tie-free inputs.
//  - Batch normalisation (CUDNN_BATCHNORM_SPATIAL for images, PER_ACTIVATION for spatial = 1,
//    which for (N, F, 1, 1) is the same per-feature statistic over N): y, save_mean and
//    save_invstd (cuDNN's "saveInvVariance" holds 1/sqrt(var + eps), our save_invstd) mean the
//    same. The running averages do not:
//      * cuDNN's exponentialAverageFactor is the weight of the new batch: 1 - keras_momentum
//        (these wrappers take the Keras momentum and convert);
//      * cuDNN folds the UNBIASED batch variance (·m/(m-1), m = N·spatial) into running_var;
//        Keras and we fold the biased one. So running_mean compares directly, running_var only
//        after rescaling the batch-variance term (or with momentum 0, where cuDNN's running_var
//        is the unbiased batch variance and ours the biased one).
//    cuDNN requires m > 1 in training (the unbiased variance divides by m - 1).
#pragma once

#include <cstdint>

#include "kernels/batchnorm.h"
#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"
#include "kernels/pool2d.h"
#include "kernels/vendor/cudnn.h"

namespace polytask::kernels::vendor {

// y (N, C, H_out, W_out) = window maxima of x (N, C, H_in, W_in).
void cudnn_max_pool2d_forward(const CudnnHandle& handle, const MaxPool2dShape& s, const float* x,
                              float* y, cuda::Stream stream);

// dx (N, C, H_in, W_in), overwritten or accumulated (cuDNN's beta = 0 or 1), from x, the
// forward's y and dy.
void cudnn_max_pool2d_backward(const CudnnHandle& handle, const MaxPool2dShape& s, const float* x,
                               const float* y, const float* dy, float* dx, GradMode mode,
                               cuda::Stream stream);

// Training forward. running_mean and running_var are updated in place with cuDNN's rule
// (factor 1 - keras_momentum, unbiased variance; see above). eps: Keras' epsilon.
void cudnn_batchnorm_forward_train(const CudnnHandle& handle, const BatchNormShape& s,
                                   const float* x, const float* gamma, const float* beta,
                                   float eps, float keras_momentum, float* y, float* save_mean,
                                   float* save_invstd, float* running_mean, float* running_var,
                                   cuda::Stream stream);

void cudnn_batchnorm_forward_infer(const CudnnHandle& handle, const BatchNormShape& s,
                                   const float* x, const float* gamma, const float* beta,
                                   const float* running_mean, const float* running_var, float eps,
                                   float* y, cuda::Stream stream);

// dx, dgamma and dbeta (none may be null: cuDNN always writes all three), overwritten or
// accumulated, from the forward's save_mean and save_invstd.
void cudnn_batchnorm_backward(const CudnnHandle& handle, const BatchNormShape& s, const float* x,
                              const float* dy, const float* gamma, const float* save_mean,
                              const float* save_invstd, float eps, float* dx, float* dgamma,
                              float* dbeta, GradMode mode, cuda::Stream stream);

}  // namespace polytask::kernels::vendor
