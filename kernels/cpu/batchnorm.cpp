#include "kernels/batchnorm.h"

#include <array>
#include <cmath>

#include "kernels/cpu/parallel.h"

namespace polytask::kernels::cpu {

namespace {

// Element (i, c, j) of an (N, C, spatial) tensor lives at (i·C + c)·spatial + j.
struct ChannelView {
  int64_t c, spatial;
  int64_t offset(int64_t i, int64_t channel) const { return (i * c + channel) * spatial; }
};

// Channel sums in double, in a fixed order that does not depend on the thread count (one
// thread sums a whole channel): kLanes running sums, element j of each row adding into lane
// j % kLanes (the rows of a channel are `spatial` long, 676 and 121 in the workloads), the
// lanes then added pairwise. A single running sum is a chain of dependent double adds, 4
// cycles each, which is what bounded these kernels; independent lanes let the compiler keep
// them in vector registers (SSE2: two doubles per add). Floats use 8 lanes; their statistics
// move by double roundings only, far below the float results' rounding. Doubles, the oracle of
// the gradient checks, keep the one running sum (kLanes = 1: the order the tests' plain
// reference sums in, which they compare with at 1e-12 even where a mean of 1e4 cancels).
template <class T>
constexpr int kLanes = sizeof(T) == sizeof(float) ? 8 : 1;

// kSums such sums side by side, so that one pass over a row feeds them all.
template <int kSums, int kLaneCount>
struct LaneSums {
  static_assert((kLaneCount & (kLaneCount - 1)) == 0, "pairwise total needs a power of two");
  double lane[kSums][kLaneCount] = {};

  // Adds term(j), an std::array of kSums values, for j in [0, len) of one row.
  template <class Term>
  void add_row(int64_t len, Term term) {
    int64_t j = 0;
    for (; j + kLaneCount <= len; j += kLaneCount)
      for (int l = 0; l < kLaneCount; ++l) {
        const std::array<double, kSums> v = term(j + l);
        for (int k = 0; k < kSums; ++k) lane[k][l] += v[k];
      }
    for (int l = 0; j < len; ++j, ++l) {
      const std::array<double, kSums> v = term(j);
      for (int k = 0; k < kSums; ++k) lane[k][l] += v[k];
    }
  }

  double total(int k) const {
    double p[kLaneCount];
    for (int l = 0; l < kLaneCount; ++l) p[l] = lane[k][l];
    for (int width = kLaneCount / 2; width > 0; width /= 2)
      for (int l = 0; l < width; ++l) p[l] = p[2 * l] + p[2 * l + 1];
    return p[0];
  }
};

// y = (x - mean) · scale + shift over one channel of every example, shared by the training
// and inference forwards. Each element in double, rounded once. y may alias x.
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

// dx = scale · (m·dy - Σdy - x̂·Σdy·x̂) with x̂ = (x - mean)·invstd over one channel, as
// a·dy + b·(x - mean) - c with the per-channel a = scale·m, b = -scale·invstd·Σdy·x̂ and
// c = scale·Σdy (5 double operations instead of 7; the same value up to double rounding), in
// double and rounded once, written (Overwrite) or added (Accumulate). dx may alias dy.
template <bool kAccumulate, class T>
void channel_dx(const BatchNormShape& s, const ChannelView& view, int64_t ch, const T* x,
                const T* dy, double mean, double a, double b, double c, T* dx) {
  for (int64_t i = 0; i < s.n; ++i) {
    const T* xrow = x + view.offset(i, ch);
    const T* dyrow = dy + view.offset(i, ch);
    T* dxrow = dx + view.offset(i, ch);
    for (int64_t j = 0; j < s.spatial; ++j) {
      const double g = a * static_cast<double>(dyrow[j]) +
                       b * (static_cast<double>(xrow[j]) - mean) - c;
      if constexpr (kAccumulate)
        dxrow[j] = dxrow[j] + static_cast<T>(g);
      else
        dxrow[j] = static_cast<T>(g);
    }
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

  // Threads take whole channels; each element costs a few double operations per pass.
  const int threads = parallel_threads(2 * s.n * s.c * s.spatial);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    // Two passes in double: the one-pass E[x²] - E[x]² loses every digit when |mean| >> std,
    // which happens for un-normalised inputs and late in training.
    LaneSums<1, kLanes<T>> sum;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* row = x + view.offset(i, ch);
      sum.add_row(s.spatial,
                  [row](int64_t j) { return std::array<double, 1>{static_cast<double>(row[j])}; });
    }
    const double mean = sum.total(0) * inv_count;
    LaneSums<1, kLanes<T>> squares;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* row = x + view.offset(i, ch);
      squares.add_row(s.spatial, [row, mean](int64_t j) {
        const double d = static_cast<double>(row[j]) - mean;
        return std::array<double, 1>{d * d};
      });
    }
    const double var = squares.total(0) * inv_count;  // biased, as Keras uses for both purposes
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
  // Threads take whole channels; each element costs a few double operations per pass.
  const int threads = parallel_threads(2 * s.n * s.c * s.spatial);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
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

  // Threads take whole channels; each element costs a few double operations per pass.
  const int threads = parallel_threads(2 * s.n * s.c * s.spatial);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t ch = 0; ch < s.c; ++ch) {
    const double mean = static_cast<double>(save_mean[ch]);
    const double invstd = static_cast<double>(save_invstd[ch]);
    // Σdy and Σdy·(x - mean); invstd multiplies the second sum once instead of every term.
    LaneSums<2, kLanes<T>> sums;
    for (int64_t i = 0; i < s.n; ++i) {
      const T* xrow = x + view.offset(i, ch);
      const T* dyrow = dy + view.offset(i, ch);
      sums.add_row(s.spatial, [xrow, dyrow, mean](int64_t j) {
        const double g = static_cast<double>(dyrow[j]);
        return std::array<double, 2>{g, g * (static_cast<double>(xrow[j]) - mean)};
      });
    }
    const double sum_g = sums.total(0), sum_g_xhat = sums.total(1) * invstd;
    // Null parameter gradients are tolerated so a frozen BatchNorm can still pass dx on.
    if (dgamma) store_grad(mode, dgamma[ch], static_cast<T>(sum_g_xhat));
    if (dbeta) store_grad(mode, dbeta[ch], static_cast<T>(sum_g));
    if (!dx || count == 0) continue;
    // The mean and variance depend on every x of the channel, hence the two batch sums that
    // remove the gradient components along 1 and along x̂.
    const double scale = static_cast<double>(gamma[ch]) * invstd / m;
    const double a = scale * m, b = -scale * invstd * sum_g_xhat, c = scale * sum_g;
    if (mode == GradMode::Accumulate)
      channel_dx<true>(s, view, ch, x, dy, mean, a, b, c, dx);
    else
      channel_dx<false>(s, view, ch, x, dy, mean, a, b, c, dx);
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
