// The CPU BatchNorm kernels: threads take whole channels (batchnorm_channels.h does one), so a
// channel's sums run in one fixed order whatever the thread count. Float channels run on the
// instruction set's micro-kernels (MicroKernels::batchnorm), doubles on the baseline copy.
#include "kernels/batchnorm.h"

#include <cmath>
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

// ---- synchronised BatchNorm: plain index-order sums in double, a thread per channel ----------

template <class T>
void batchnorm_sync_forward_sums(const BatchNormShape& s, const T* x, const T* running_mean,
                                 double* sums) {
  const baseline::ChannelView view{s.c, s.spatial};
  const int threads = channel_threads(s);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double shift = static_cast<double>(running_mean[ch]);
    double first = 0.0, second = 0.0;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* row = x + view.offset(i, ch);
      for (int64_t j = 0; j < s.spatial; ++j) {
        const double d = static_cast<double>(row[j]) - shift;
        first += d;
        second += d * d;
      }
    }
    sums[ch] = first;
    sums[s.c + ch] = second;
  }
}

template <class T>
void batchnorm_sync_forward_apply(const BatchNormShape& s, int64_t count, const T* x,
                                  const T* gamma, const T* beta, T eps, T momentum,
                                  const double* sums, T* y, T* save_mean, T* save_invstd,
                                  T* running_mean, T* running_var) {
  if (count <= 0) return;  // no statistics anywhere: as batchnorm_forward_train, touch nothing
  const baseline::ChannelView view{s.c, s.spatial};
  const double inv_count = 1.0 / static_cast<double>(count);
  const double keep = static_cast<double>(momentum);
  const int threads = channel_threads(s);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double shift = static_cast<double>(running_mean[ch]);
    const double offset = sums[ch] * inv_count;
    double var = sums[s.c + ch] * inv_count - offset * offset;  // biased, as Keras uses
    if (var < 0.0) var = 0.0;  // a rounding below zero (a NaN stays NaN)
    const double mean = shift + offset;
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    baseline::normalize_channel(s, view, ch, x, mean, static_cast<double>(gamma[ch]) * invstd,
                                static_cast<double>(beta[ch]), y);
    save_mean[ch] = static_cast<T>(mean);
    save_invstd[ch] = static_cast<T>(invstd);
    running_mean[ch] = static_cast<T>(keep * shift + (1.0 - keep) * mean);
    running_var[ch] =
        static_cast<T>(keep * static_cast<double>(running_var[ch]) + (1.0 - keep) * var);
  }
}

template <class T>
void batchnorm_sync_backward_sums(const BatchNormShape& s, const T* x, const T* dy,
                                  const T* save_mean, const T* save_invstd, double* sums, T* dgamma,
                                  T* dbeta, GradMode mode) {
  const baseline::ChannelView view{s.c, s.spatial};
  const int threads = channel_threads(s);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double mean = static_cast<double>(save_mean[ch]);
    double sum_g = 0.0, sum_g_centred = 0.0;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* xrow = x + view.offset(i, ch);
      const T* grow = dy + view.offset(i, ch);
      for (int64_t j = 0; j < s.spatial; ++j) {
        const double g = static_cast<double>(grow[j]);
        sum_g += g;
        sum_g_centred += g * (static_cast<double>(xrow[j]) - mean);
      }
    }
    sums[ch] = sum_g;
    sums[s.c + ch] = sum_g_centred;
    const double invstd = static_cast<double>(save_invstd[ch]);
    if (dgamma) store_grad(mode, dgamma[ch], static_cast<T>(sum_g_centred * invstd));
    if (dbeta) store_grad(mode, dbeta[ch], static_cast<T>(sum_g));
  }
}

template <class T>
void batchnorm_sync_backward_dx(const BatchNormShape& s, int64_t count, const T* x, const T* dy,
                                const T* gamma, const T* save_mean, const T* save_invstd,
                                const double* sums, T* dx, GradMode mode) {
  if (count <= 0 || s.n * s.spatial == 0) return;
  const baseline::ChannelView view{s.c, s.spatial};
  const double m = static_cast<double>(count);
  const int threads = channel_threads(s);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    // The single-process kernel's expression (batchnorm_backward_channel) with global sums.
    const double mean = static_cast<double>(save_mean[ch]);
    const double invstd = static_cast<double>(save_invstd[ch]);
    const double sum_g = sums[ch], sum_g_xhat = sums[s.c + ch] * invstd;
    const double scale = static_cast<double>(gamma[ch]) * invstd / m;
    const double a = scale * m, b = -scale * invstd * sum_g_xhat, c = scale * sum_g;
    if (mode == GradMode::Accumulate)
      baseline::channel_dx<true>(s, view, ch, x, dy, mean, a, b, c, dx);
    else
      baseline::channel_dx<false>(s, view, ch, x, dy, mean, a, b, c, dx);
  }
}

#define POLYTASK_INSTANTIATE_BATCHNORM(T)                                                          \
  template void batchnorm_forward_train<T>(const BatchNormShape&, const T*, const T*, const T*, T, \
                                           T, T*, T*, T*, T*, T*);                                 \
  template void batchnorm_forward_infer<T>(const BatchNormShape&, const T*, const T*, const T*,    \
                                           const T*, const T*, T, T*);                             \
  template void batchnorm_backward<T>(const BatchNormShape&, const T*, const T*, const T*,         \
                                      const T*, const T*, T*, T*, T*, GradMode);                   \
  template void batchnorm_sync_forward_sums<T>(const BatchNormShape&, const T*, const T*,          \
                                               double*);                                           \
  template void batchnorm_sync_forward_apply<T>(const BatchNormShape&, int64_t, const T*,          \
                                                const T*, const T*, T, T, const double*, T*, T*,   \
                                                T*, T*, T*);                                       \
  template void batchnorm_sync_backward_sums<T>(const BatchNormShape&, const T*, const T*,         \
                                                const T*, const T*, double*, T*, T*, GradMode);    \
  template void batchnorm_sync_backward_dx<T>(const BatchNormShape&, int64_t, const T*, const T*,  \
                                              const T*, const T*, const T*, const double*, T*,     \
                                              GradMode);

POLYTASK_INSTANTIATE_BATCHNORM(float)
POLYTASK_INSTANTIATE_BATCHNORM(double)

#undef POLYTASK_INSTANTIATE_BATCHNORM

}  // namespace polytask::kernels::cpu
