// Metrics reduced to a sum per batch (the caller divides by the examples it has seen, so that
// epochs with a short last batch average correctly).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/reduce.h"

namespace polytask::kernels::cpu {

// How many rows whose argmax over (rows, classes) scores equals the label. Ties pick the first
// maximum, as numpy/torch argmax do.
template <class T>
int64_t count_correct(int64_t rows, int64_t classes, const T* scores, const int32_t* labels);

// The same against target rows (rows, classes): the argmax of each target row is its label.
template <class T>
int64_t count_correct_targets(int64_t rows, int64_t classes, const T* scores, const T* targets);

// Binary accuracy of logits against {0,1} targets, threshold at logit 0 (probability 0.5).
template <class T>
int64_t count_correct_binary(int64_t count, const T* logits, const T* targets);

// Σ |pred - target| over count elements, accumulated in double.
template <class T>
double sum_abs_error(int64_t count, const T* pred, const T* target);

}  // namespace polytask::kernels::cpu

namespace polytask::kernels::cuda {

// The device versions (kernels/cuda/metrics.cu), float only, asynchronous on `stream`; every
// pointer is device memory. Each ADDS its batch result to the device double `*total`, so an
// epoch keeps its running sums on the device and reads them once (counts stay exact in double
// up to 2^53). The same rules as cpu:: — first maximum on ties, NaN rows never correct, labels
// outside [0, classes) never correct, NaN propagating into sum_abs_error — and deterministic:
// the batch is reduced through `partials` (kReduceWorkspace doubles, kernels/reduce.h) in a
// fixed order.
void count_correct(int64_t rows, int64_t classes, const float* scores, const int32_t* labels,
                   double* total, double* partials, Stream stream);
void count_correct_targets(int64_t rows, int64_t classes, const float* scores,
                           const float* targets, double* total, double* partials,
                           Stream stream);
void count_correct_binary(int64_t count, const float* logits, const float* targets,
                          double* total, double* partials, Stream stream);
void sum_abs_error(int64_t count, const float* pred, const float* target, double* total,
                   double* partials, Stream stream);

}  // namespace polytask::kernels::cuda
