#include "kernels/batchnorm.h"

#include <cmath>

#include "kernels/cpu/parallel.h"

namespace polytask::kernels::cpu {

namespace {

// Element (i, c, j) of an (N, C, spatial) tensor lives at (i·C + c)·spatial + j.
struct ChannelView {
  int64_t c, spatial;
  int64_t offset(int64_t i, int64_t channel) const { return (i * c + channel) * spatial; }
};

// y = (x - mean) · scale + shift over one channel of every example, shared by the training
// and inference forwards.
template <class T>
void normalize_channel(const BatchNormShape& s, const ChannelView& view, int64_t ch, const T* x,
                       double mean, double scale, double shift, T* y) {
  for (int64_t i = 0; i < s.n; ++i) {
    const T* row = x + view.offset(i, ch);
    T* out = y + view.offset(i, ch);
    for (int64_t j = 0; j < s.spatial; ++j)
      out[j] = static_cast<T>((static_cast<double>(row[j]) - mean) * scale + shift);
  }
}

}  // namespace

template <class T>
void batchnorm_forward_train(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             T eps, T momentum, T* y, T* save_mean, T* save_invstd, T* running_mean,
                             T* running_var) {
  const int64_t count = s.n * s.spatial;
  // With no elements per channel there are no statistics to normalise with or to fold into
  // the running averages; leaving everything untouched beats writing NaN into the model.
  if (count == 0) return;
  const ChannelView view{s.c, s.spatial};
  const double inv_count = 1.0 / static_cast<double>(count);
  const double keep = static_cast<double>(momentum);

#pragma omp parallel for schedule(static) if (s.n * s.c * s.spatial > kParallelThreshold)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    // Two passes in double: the one-pass E[x²] - E[x]² loses every digit when |mean| >> std,
    // which happens for un-normalised inputs and late in training.
    double sum = 0;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* row = x + view.offset(i, ch);
      for (int64_t j = 0; j < s.spatial; ++j) sum += static_cast<double>(row[j]);
    }
    const double mean = sum * inv_count;
    double squares = 0;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* row = x + view.offset(i, ch);
      for (int64_t j = 0; j < s.spatial; ++j) {
        const double d = static_cast<double>(row[j]) - mean;
        squares += d * d;
      }
    }
    const double var = squares * inv_count;  // biased, as Keras uses for both purposes
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    const double scale = static_cast<double>(gamma[ch]) * invstd;
    normalize_channel(s, view, ch, x, mean, scale, static_cast<double>(beta[ch]), y);
    save_mean[ch] = static_cast<T>(mean);
    save_invstd[ch] = static_cast<T>(invstd);
    running_mean[ch] =
        static_cast<T>(keep * static_cast<double>(running_mean[ch]) + (1.0 - keep) * mean);
    running_var[ch] =
        static_cast<T>(keep * static_cast<double>(running_var[ch]) + (1.0 - keep) * var);
  }
}

template <class T>
void batchnorm_forward_infer(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                             const T* running_mean, const T* running_var, T eps, T* y) {
  const ChannelView view{s.c, s.spatial};
#pragma omp parallel for schedule(static) if (s.n * s.c * s.spatial > kParallelThreshold)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double invstd =
        1.0 / std::sqrt(static_cast<double>(running_var[ch]) + static_cast<double>(eps));
    const double mean = static_cast<double>(running_mean[ch]);
    const double scale = static_cast<double>(gamma[ch]) * invstd;
    normalize_channel(s, view, ch, x, mean, scale, static_cast<double>(beta[ch]), y);
  }
}

template <class T>
void batchnorm_backward(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                        const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta,
                        GradMode mode) {
  const int64_t count = s.n * s.spatial;
  const ChannelView view{s.c, s.spatial};
  const double m = static_cast<double>(count);

#pragma omp parallel for schedule(static) if (s.n * s.c * s.spatial > kParallelThreshold)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double mean = static_cast<double>(save_mean[ch]);
    const double invstd = static_cast<double>(save_invstd[ch]);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* xrow = x + view.offset(i, ch);
      const T* dyrow = dy + view.offset(i, ch);
      for (int64_t j = 0; j < s.spatial; ++j) {
        const double g = static_cast<double>(dyrow[j]);
        sum_dy += g;
        sum_dy_xhat += g * (static_cast<double>(xrow[j]) - mean) * invstd;
      }
    }
    // Null parameter gradients are tolerated so a frozen BatchNorm can still pass dx on.
    if (dgamma) store_grad(mode, dgamma[ch], static_cast<T>(sum_dy_xhat));
    if (dbeta) store_grad(mode, dbeta[ch], static_cast<T>(sum_dy));
    if (!dx || count == 0) continue;
    // The mean and variance depend on every x of the channel, hence the two batch sums that
    // remove the gradient components along 1 and along x̂.
    const double scale = static_cast<double>(gamma[ch]) * invstd / m;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* xrow = x + view.offset(i, ch);
      const T* dyrow = dy + view.offset(i, ch);
      T* dxrow = dx + view.offset(i, ch);
      for (int64_t j = 0; j < s.spatial; ++j) {
        const double xhat = (static_cast<double>(xrow[j]) - mean) * invstd;
        const double g = scale * (m * static_cast<double>(dyrow[j]) - sum_dy - xhat * sum_dy_xhat);
        store_grad(mode, dxrow[j], static_cast<T>(g));
      }
    }
  }
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
