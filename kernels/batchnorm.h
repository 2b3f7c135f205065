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

// ---- synchronised BatchNorm (data-parallel training, LayerCall::sync_batchnorm) ---------------
//
// The batch is the union of every rank's rows: this rank holds (n, C, spatial) of it, `count`
// is the channel's element count over all ranks (global rows · spatial). Each pass is split
// around the caller's sum of `sums` (2·C doubles) over the ranks:
//   forward:  batchnorm_sync_forward_sums -> allreduce -> batchnorm_sync_forward_apply
//   backward: batchnorm_sync_backward_sums -> allreduce -> batchnorm_sync_backward_dx
// Every rank then holds the same sums, so the same statistics, running averages and dx formula.
//
// The forward sums are Σ(x - r) and Σ(x - r)² with r = running_mean[ch] (read before apply
// updates it). Why: the shift must be the same on every rank (the single-process kernels' x₀,
// a channel's first element, differs between ranks), and the running mean is one that every
// rank holds bit for bit (all update it identically) with no exchange, so a step costs one sum
// of 2·C doubles. Exact two-pass statistics would cost a second collective (Σx, then
// Σ(x - mean)²); gathering every rank's (count, mean, M2) would grow with the ranks. The price:
// var = E[(x-r)²] - E[x-r]² cancels as far as r is off the batch mean in standard deviations,
// ~1e-16·(1 + ((mean - r)/std)²) relative (digits of the variance, never a wrong mean). Float
// results stay within an ulp of the single-process ones up to ~10⁴ standard deviations (inputs
// far from zero early in training, before the running mean has moved), an f64 run ~1e-12
// relative up to ~100.
//
// The backward sums are Σdy and Σdy·(x - mean) (the second times invstd is Σdy·x̂). The
// parameter gradients are this rank's own (dgamma = Σ_local dy·x̂, dbeta = Σ_local dy, per
// `mode`): the trainer sums the parameter gradients over the ranks afterwards. dx uses the sums
// over every rank and m = count.

// sums[ch] = Σ(x - running_mean[ch]), sums[C + ch] = Σ(x - running_mean[ch])², in double (zeros
// for an empty batch, which must still take part in the sum).
template <class T>
void batchnorm_sync_forward_sums(const BatchNormShape& s, const T* x, const T* running_mean,
                                 double* sums);

// y, save_mean, save_invstd and the running averages from the summed `sums` (global statistics,
// biased variance) as batchnorm_forward_train does with its own. count == 0 leaves everything
// untouched; an empty local batch still updates the running averages.
template <class T>
void batchnorm_sync_forward_apply(const BatchNormShape& s, int64_t count, const T* x,
                                  const T* gamma, const T* beta, T eps, T momentum,
                                  const double* sums, T* y, T* save_mean, T* save_invstd,
                                  T* running_mean, T* running_var);

// sums[ch] = Σdy, sums[C + ch] = Σdy·(x - save_mean[ch]) over this batch; dgamma and dbeta (each
// may be nullptr) receive this batch's Σdy·x̂ and Σdy according to mode.
template <class T>
void batchnorm_sync_backward_sums(const BatchNormShape& s, const T* x, const T* dy,
                                  const T* save_mean, const T* save_invstd, double* sums, T* dgamma,
                                  T* dbeta, GradMode mode);

// dx = γ·invstd/m · (m·dy - Σdy - x̂·Σdy·x̂) with the summed `sums` and m = count, per mode.
template <class T>
void batchnorm_sync_backward_dx(const BatchNormShape& s, int64_t count, const T* x, const T* dy,
                                const T* gamma, const T* save_mean, const T* save_invstd,
                                const double* sums, T* dx, GradMode mode);

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

// The synchronised BatchNorm (see the cpu:: versions) on the device: `sums` is device memory of
// 2·C doubles, apart from `partials`; the caller sums it over the ranks on `stream` between the
// two halves. The sums are deterministic as above. batchnorm_sync_forward_apply overwrites sums
// with each channel's mean and invstd.
void batchnorm_sync_forward_sums(const BatchNormShape& s, const float* x, const float* running_mean,
                                 double* sums, double* partials, Stream stream);
void batchnorm_sync_forward_apply(const BatchNormShape& s, int64_t count, const float* x,
                                  const float* gamma, const float* beta, float eps, float momentum,
                                  double* sums, float* y, float* save_mean, float* save_invstd,
                                  float* running_mean, float* running_var, Stream stream);
void batchnorm_sync_backward_sums(const BatchNormShape& s, const float* x, const float* dy,
                                  const float* save_mean, const float* save_invstd, double* sums,
                                  float* dgamma, float* dbeta, GradMode mode, double* partials,
                                  Stream stream);
void batchnorm_sync_backward_dx(const BatchNormShape& s, int64_t count, const float* x,
                                const float* dy, const float* gamma, const float* save_mean,
                                const float* save_invstd, const double* sums, float* dx,
                                GradMode mode, Stream stream);

}  // namespace cuda
}  // namespace polytask::kernels
