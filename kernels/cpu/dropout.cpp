#include "kernels/dropout.h"

#include "kernels/cpu/parallel.h"
#include "kernels/error.h"

namespace polytask::kernels::cpu {

namespace {

void check_args(const char* op, int64_t count, float rate) {
  // Written so that NaN fails too; rate 1 would scale the (absent) survivors by 1/0.
  if (!(rate >= 0.0f && rate < 1.0f)) fail(op, ": rate ", rate, " is outside [0, 1)");
  if (count < 0) fail(op, ": negative element count ", count);
}

// One rounding of 1/(1-rate), shared by forward and backward so the two scale identically.
template <class T>
T keep_scale(float rate) {
  return static_cast<T>(1.0 / (1.0 - static_cast<double>(rate)));
}

}  // namespace

template <class T>
void dropout_forward(int64_t count, float rate, uint64_t seed, uint64_t stream, const T* x, T* y) {
  check_args("dropout_forward", count, rate);
  if (rate == 0.0f) {
    // Every uniform draw is >= 0, so the mask keeps all; skip the Philox work.
    if (y != x)
      for (int64_t i = 0; i < count; ++i) y[i] = x[i];
    return;
  }
  const T scale = keep_scale<T>(rate);
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (int64_t i = 0; i < count; ++i)
    y[i] = dropout_keeps(seed, stream, static_cast<uint64_t>(i), rate) ? x[i] * scale : T(0);
}

template <class T>
void dropout_backward(int64_t count, float rate, uint64_t seed, uint64_t stream, const T* dy, T* dx,
                      GradMode mode) {
  check_args("dropout_backward", count, rate);
  if (rate == 0.0f) {
    for (int64_t i = 0; i < count; ++i) store_grad(mode, dx[i], dy[i]);
    return;
  }
  const T scale = keep_scale<T>(rate);
#pragma omp parallel for schedule(static) if (count > kParallelThreshold)
  for (int64_t i = 0; i < count; ++i)
    store_grad(mode, dx[i],
               dropout_keeps(seed, stream, static_cast<uint64_t>(i), rate) ? dy[i] * scale : T(0));
}

template void dropout_forward<float>(int64_t, float, uint64_t, uint64_t, const float*, float*);
template void dropout_forward<double>(int64_t, float, uint64_t, uint64_t, const double*, double*);
template void dropout_backward<float>(int64_t, float, uint64_t, uint64_t, const float*, float*,
                                      GradMode);
template void dropout_backward<double>(int64_t, float, uint64_t, uint64_t, const double*, double*,
                                       GradMode);

}  // namespace polytask::kernels::cpu
