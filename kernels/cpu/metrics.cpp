// CPU reference for the accuracy counts and the absolute-error sum. Counts are integers, so the
// OpenMP reductions are exact for any thread count; the error sum is serial for determinism.
#include "kernels/metrics.h"
#include "kernels/cpu/parallel.h"

#include <cmath>

namespace polytask::kernels::cpu {

namespace {


// The first index of the row maximum, or -1 when the row is empty or holds a NaN: a prediction
// from NaN scores is no prediction, and must not be credited by comparisons that happen to be
// false for NaN (a plain `>` scan would silently skip the NaN and still pick some class).
template <class T>
int64_t argmax_or_invalid(int64_t classes, const T* row) {
  int64_t best = -1;
  for (int64_t j = 0; j < classes; ++j) {
    if (std::isnan(row[j])) return -1;
    if (best < 0 || row[j] > row[best]) best = j;  // strict > keeps the first of tied maxima
  }
  return best;
}

}  // namespace

template <class T>
int64_t count_correct(int64_t rows, int64_t classes, const T* scores, const int32_t* labels) {
  int64_t correct = 0;
  // A label outside [0, classes) never equals an argmax, so it counts as wrong rather than
  // throwing: metrics only observe, and the loss already rejects such labels.
#pragma omp parallel for reduction(+ : correct) if (rows * classes > kParallelThreshold)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t predicted = argmax_or_invalid(classes, scores + i * classes);
    if (predicted >= 0 && predicted == labels[i]) ++correct;
  }
  return correct;
}

template <class T>
int64_t count_correct_targets(int64_t rows, int64_t classes, const T* scores, const T* targets) {
  int64_t correct = 0;
#pragma omp parallel for reduction(+ : correct) if (rows * classes > kParallelThreshold)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t predicted = argmax_or_invalid(classes, scores + i * classes);
    const int64_t label = argmax_or_invalid(classes, targets + i * classes);
    if (predicted >= 0 && predicted == label) ++correct;
  }
  return correct;
}

template <class T>
int64_t count_correct_binary(int64_t count, const T* logits, const T* targets) {
  int64_t correct = 0;
  // A logit of exactly 0 (probability 0.5) predicts 0, as Keras' `y_pred > 0.5` does. Targets
  // are read as t > 0.5 so label smoothing (0.05 / 0.95) still means what it says.
#pragma omp parallel for reduction(+ : correct) if (count > kParallelThreshold)
  for (int64_t i = 0; i < count; ++i) {
    if (std::isnan(logits[i]) || std::isnan(targets[i])) continue;
    const bool predicted = logits[i] > T(0);
    const bool actual = targets[i] > T(0.5);
    if (predicted == actual) ++correct;
  }
  return correct;
}

template <class T>
double sum_abs_error(int64_t count, const T* pred, const T* target) {
  // NaN propagates on purpose: a NaN prediction should show up in the reported error.
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i)
    total += std::fabs(static_cast<double>(pred[i]) - static_cast<double>(target[i]));
  return total;
}

#define POLYTASK_INSTANTIATE_METRICS(T)                                            \
  template int64_t count_correct<T>(int64_t, int64_t, const T*, const int32_t*);   \
  template int64_t count_correct_targets<T>(int64_t, int64_t, const T*, const T*); \
  template int64_t count_correct_binary<T>(int64_t, const T*, const T*);           \
  template double sum_abs_error<T>(int64_t, const T*, const T*);

POLYTASK_INSTANTIATE_METRICS(float)
POLYTASK_INSTANTIATE_METRICS(double)

#undef POLYTASK_INSTANTIATE_METRICS

}  // namespace polytask::kernels::cpu
