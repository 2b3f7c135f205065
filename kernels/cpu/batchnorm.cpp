// The CPU BatchNorm kernels: threads take whole channels (batchnorm_channels.h does one), so a
// channel's sums run in one fixed order whatever the thread count. Float channels run on the
// instruction set's micro-kernels (MicroKernels::batchnorm), doubles on the baseline copy.
#include "kernels/batchnorm.h"

#include <type_traits>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/sgemm.h"

#define POLYTASK_MICROKERNEL_NAMESPACE baseline
#include "kernels/cpu/batchnorm_channels.h"
#undef POLYTASK_MICROKERNEL_NAMESPACE

namespace polytask::kernels::cpu {

namespace {

// Threads for a pass over every element: each costs a few double operations per pass.
int channel_threads(const BatchNormShape& s) { return parallel_threads(2 * s.n * s.c * s.spatial); }

// The channel kernels for T: float's from the micro-kernels, double's the baseline copy (float
// is never instantiated here).
template <class T>
auto forward_train_channel() {
  if constexpr (std::is_same_v<T, float>)
    return active_micro_kernels().batchnorm.forward_train;
  else
    return &baseline::batchnorm_forward_train_channel<T>;
}
template <class T>
auto forward_infer_channel() {
  if constexpr (std::is_same_v<T, float>)
    return active_micro_kernels().batchnorm.forward_infer;
  else
    return &baseline::batchnorm_forward_infer_channel<T>;
}
template <class T>
auto backward_channel() {
  if constexpr (std::is_same_v<T, float>)
    return active_micro_kernels().batchnorm.backward;
  else
    return &baseline::batchnorm_backward_channel<T>;
}

}  // namespace

template <class T>
void batchnorm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             T eps, T momentum, T* y, T* save_mean, T* save_invstd, T* running_mean,
                             T* running_var) {
  // With no elements per channel there are no statistics to normalise with or to fold into
  // the running averages; leaving everything untouched beats writing NaN into the model.
  if (s.n * s.spatial == 0) return;
  const auto channel = forward_train_channel<T>();
  const int threads = channel_threads(s);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch)
    channel(s, ch, x, gamma, beta, eps, momentum, y, save_mean, save_invstd, running_mean,
            running_var);
}

template <class T>
void batchnorm_forward_infer(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps, T* y) {
  const auto channel = forward_infer_channel<T>();
  const int threads = channel_threads(s);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch)
    channel(s, ch, x, gamma, beta, running_mean, running_var, eps, y);
}

template <class T>
void batchnorm_backward(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                        const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta,
                        GradMode mode) {
  const auto channel = backward_channel<T>();
  const int threads = channel_threads(s);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch)
    channel(s, ch, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, mode);
}

#define POLYTASK_INSTANTIATE_BATCHNORM(T)                                                          \
  template void batchnorm_forward_train<T>(const BatchNormShape&, const T*, const T*, const T*, T, \
                                           T, T*, T*, T*, T*, T*);                                 \
  template void batchnorm_forward_infer<T>(const BatchNormShape&, const T*, const T*, const T*,    \
                                           const T*, const T*, T, T*);                             \
  template void batchnorm_backward<T>(const BatchNormShape&, const T*, const T*, const T*,         \
                                      const T*, const T*, T*, T*, T*, GradMode);

POLYTASK_INSTANTIATE_BATCHNORM(float)
POLYTASK_INSTANTIATE_BATCHNORM(double)

#undef POLYTASK_INSTANTIATE_BATCHNORM

}  // namespace polytask::kernels::cpu
