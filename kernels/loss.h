// Losses, each a mean over the batch (Keras and PyTorch reduce the same way):
//  - softmax cross-entropy on logits, fused and numerically stable (log-sum-exp with the row
//    maximum subtracted), with integer class labels or one-hot / soft target rows;
//  - binary cross-entropy on logits (the stable max(z,0) - z·t + log(1 + e^-|z|) form);
//  - mean squared error over every element.
// Forward writes the scalar loss; backward writes scale · ∂loss/∂prediction, where scale is the
// seed the engine passes (the task's loss weight).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"
#include "kernels/reduce.h"

namespace polytask::kernels::cpu {

// logits (rows, classes); labels (rows) in [0, classes) — an out-of-range label throws
// polytask::Error naming the row; probs (rows, classes) receives the softmax (kept for
// backward and metrics); loss receives the mean of -log p[label].
template <class T>
void softmax_cross_entropy_forward(int64_t rows, int64_t classes, const T* logits,
                                   const int32_t* labels, T* probs, T* loss);

// dlogits = scale · (probs - onehot(labels)) / rows.
template <class T>
void softmax_cross_entropy_backward(int64_t rows, int64_t classes, const T* probs,
                                    const int32_t* labels, T scale, T* dlogits, GradMode mode);

// The same with target distributions (rows, classes), e.g. one-hot rows.
template <class T>
void softmax_cross_entropy_targets_forward(int64_t rows, int64_t classes, const T* logits,
                                           const T* targets, T* probs, T* loss);
template <class T>
void softmax_cross_entropy_targets_backward(int64_t rows, int64_t classes, const T* probs,
                                            const T* targets, T scale, T* dlogits, GradMode mode);

// logits and targets (count elements, targets in [0, 1]); loss = mean over all elements.
template <class T>
void binary_cross_entropy_forward(int64_t count, const T* logits, const T* targets, T* loss);
// dlogits = scale · (sigmoid(z) - t) / count.
template <class T>
void binary_cross_entropy_backward(int64_t count, const T* logits, const T* targets, T scale,
                                   T* dlogits, GradMode mode);

// loss = mean((pred - target)^2) over all count elements.
template <class T>
void mse_forward(int64_t count, const T* pred, const T* target, T* loss);
// dpred = scale · 2 (pred - target) / count.
template <class T>
void mse_backward(int64_t count, const T* pred, const T* target, T scale, T* dpred,
                  GradMode mode);

}  // namespace polytask::kernels::cpu

namespace polytask::kernels::cuda {

// The seed of a backward pass: a number, or a device float read when the kernel runs — what a
// captured CUDA graph needs, since it freezes its arguments while the balancer's seeds change.
struct LossScale {
  float value = 1.0f;
  const float* device = nullptr;  // when set, *device is the seed and value is ignored
  LossScale(float v) : value(v) {}  // NOLINT(google-explicit-constructor): a plain number
  explicit LossScale(const float* on_device) : device(on_device) {}
};

// The device versions (kernels/cuda/loss.cu), float only, asynchronous on `stream`; every
// pointer is device memory. Forward passes write the mean loss to the device float `loss`,
// reduced in double through `partials` (kReduceWorkspace doubles, kernels/reduce.h) in a fixed
// order: the same inputs give the same bits on every run. Softmax rows are numerically stable
// (row maximum subtracted). Backward passes write scale·∂loss/∂input with GradMode.
//
// Labels: a kernel cannot throw, so an out-of-range label is reported through the device int
// `bad_label_row`: the smallest row whose label lies outside [0, classes), or -1 when all are
// valid (so the caller can raise the CPU's error naming the row). Such a row still gets its
// softmax in probs, reads no logit out of bounds, and adds NaN to the loss. bad_label_row may
// be null when the caller does not want the report.
void softmax_cross_entropy_forward(int64_t rows, int64_t classes, const float* logits,
                                   const int32_t* labels, float* probs, float* loss,
                                   int* bad_label_row, double* partials, Stream stream);
// An out-of-range label (reported by forward) adds no one-hot term: its row gets scale·probs/rows.
void softmax_cross_entropy_backward(int64_t rows, int64_t classes, const float* probs,
                                    const int32_t* labels, LossScale scale, float* dlogits,
                                    GradMode mode, Stream stream);

void softmax_cross_entropy_targets_forward(int64_t rows, int64_t classes, const float* logits,
                                           const float* targets, float* probs, float* loss,
                                           double* partials, Stream stream);
void softmax_cross_entropy_targets_backward(int64_t rows, int64_t classes, const float* probs,
                                            const float* targets, LossScale scale, float* dlogits,
                                            GradMode mode, Stream stream);

void binary_cross_entropy_forward(int64_t count, const float* logits, const float* targets,
                                  float* loss, double* partials, Stream stream);
void binary_cross_entropy_backward(int64_t count, const float* logits, const float* targets,
                                   LossScale scale, float* dlogits, GradMode mode, Stream stream);

void mse_forward(int64_t count, const float* pred, const float* target, float* loss,
                 double* partials, Stream stream);
void mse_backward(int64_t count, const float* pred, const float* target, LossScale scale,
                  float* dpred, GradMode mode, Stream stream);

}  // namespace polytask::kernels::cuda
