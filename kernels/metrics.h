// Metrics reduced to a sum per batch (the caller divides by the examples it has seen, so that
// epochs with a short last batch average correctly).
#pragma once

#include <cstdint>

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
