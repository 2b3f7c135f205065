// BatchNorm's work on one channel (the CPU kernels' threads take whole channels), in double
// and rounded once per element. Included twice over: by kernels/cpu/batchnorm.cpp in namespace
// `baseline` (the double reference, and the compiler's baseline x86-64), and for float by each
// kernels/cpu/microkernels_<isa>.cpp in its ISA's namespace, compiled for its vectors: the
// per-element double arithmetic is what bounds these passes (SSE2 does two doubles at a time,
// AVX-512 eight; at the fashion preset's shapes the float kernels run 2x faster on AVX-512).
// The namespace keeps the copies apart: the same template compiled with different instruction
// sets must not be merged by the linker.
#pragma once

#if !defined(POLYTASK_MICROKERNEL_NAMESPACE)
#error "include batchnorm_channels.h from batchnorm.cpp or a kernels/cpu/microkernels_<isa>.cpp"
#endif

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/batchnorm.h"
#include "kernels/grad_mode.h"

// The 64-byte vectors below pass between inline functions of one file, compiled for one
// instruction set; the functions other files call take none. GCC's warning that their calling
// convention differs between instruction sets (-Wpsabi) therefore concerns no call here. It is
// silenced for the rest of the including file: GCC reports it where the templates are
// instantiated, at the file's end.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace polytask::kernels::cpu::POLYTASK_MICROKERNEL_NAMESPACE {

// Element (i, c, j) of an (N, C, spatial) tensor lives at (i·C + c)·spatial + j.
struct ChannelView {
  int64_t c, spatial;
  int64_t offset(int64_t i, int64_t channel) const { return (i * c + channel) * spatial; }
};

// Channel sums in double, in a fixed order that does not depend on the thread count (one
// thread sums a whole channel): kSumLanes running sums, element j of each row adding into lane
// j % kSumLanes (the rows of a channel are `spatial` long, 676 and 121 in the workloads), the
// lanes then added pairwise. A single running sum is a chain of dependent double adds, 4
// cycles each, which is what bounded these kernels. Floats use 16 lanes, written as two
// vectors of 8 doubles (two zmm, four ymm or eight xmm: the same 16 lanes, so every
// instruction set adds in the same order); their statistics move by double roundings only,
// far below the float results' rounding. Doubles, the oracle of the gradient checks, keep the
// one running sum (kSumLanes = 1: the order the tests' plain reference sums in, which they
// compare with at 1e-12 even where a mean of 1e4 cancels).
template <class T>
constexpr int kSumLanes = sizeof(T) == sizeof(float) ? 16 : 1;

typedef double vdouble8 __attribute__((vector_size(8 * sizeof(double))));
typedef float vfloat8 __attribute__((vector_size(8 * sizeof(float))));

inline vdouble8 load_as_double(const float* p) {
  vfloat8 v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, vdouble8);
}

// kSums such sums side by side, so that one pass over a row feeds them all. add_row(len, term,
// rows...) adds term(rows[j]...) for j < len, term being generic over its element type: 8
// doubles at a time (vdouble8) or one (double), returning an std::array of kSums of it.
template <int kSums, int kLaneCount>
struct LaneSums;

template <int kSums>
struct LaneSums<kSums, 1> {
  double sum[kSums] = {};
  template <class Term, class... Rows>
  void add_row(int64_t len, Term term, const Rows*... rows) {
    for (int64_t j = 0; j < len; ++j) {
      const auto v = term(static_cast<double>(rows[j])...);
      for (int k = 0; k < kSums; ++k) sum[k] += v[k];
    }
  }
  double total(int k) const { return sum[k]; }
};

template <int kSums>
struct LaneSums<kSums, 16> {
  vdouble8 lane[kSums][2] = {};  // lane l is lane[k][l / 8][l % 8]
  template <class Term, class... Rows>
  void add_row(int64_t len, Term term, const Rows*... rows) {
    int64_t j = 0;
    for (; j + 16 <= len; j += 16) {
      const auto lo = term(load_as_double(rows + j)...);
      const auto hi = term(load_as_double(rows + j + 8)...);
      for (int k = 0; k < kSums; ++k) {
        lane[k][0] += lo[k];
        lane[k][1] += hi[k];
      }
    }
    for (int l = 0; j < len; ++j, ++l) {
      const auto v = term(static_cast<double>(rows[j])...);
      for (int k = 0; k < kSums; ++k) lane[k][l / 8][l % 8] += v[k];
    }
  }
  double total(int k) const {
    double p[16];
    for (int l = 0; l < 16; ++l) p[l] = lane[k][l / 8][l % 8];
    for (int width = 8; width > 0; width /= 2)
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
      const double g =
          a * static_cast<double>(dyrow[j]) + b * (static_cast<double>(xrow[j]) - mean) - c;
      if constexpr (kAccumulate)
        dxrow[j] = dxrow[j] + static_cast<T>(g);
      else
        dxrow[j] = static_cast<T>(g);
    }
  }
}

// Mean and variance of channel ch (two passes: the one-pass E[x²] - E[x]² loses every digit
// when |mean| >> std, which happens for un-normalised inputs and late in training), then y,
// the saved statistics and the running averages.
template <class T>
void batchnorm_forward_train_channel(const BatchNormShape& s, int64_t ch, const T* x,
                                     const T* gamma, const T* beta, T eps, T momentum, T* y,
                                     T* save_mean, T* save_invstd, T* running_mean,
                                     T* running_var) {
  const ChannelView view{s.c, s.spatial};
  const double inv_count = 1.0 / static_cast<double>(s.n * s.spatial);
  const double keep = static_cast<double>(momentum);
  LaneSums<1, kSumLanes<T>> sum;
  for (int64_t i = 0; i < s.n; ++i)
    sum.add_row(
        s.spatial, [](auto v) { return std::array{v}; }, x + view.offset(i, ch));
  const double mean = sum.total(0) * inv_count;
  LaneSums<1, kSumLanes<T>> squares;
  for (int64_t i = 0; i < s.n; ++i)
    squares.add_row(
        s.spatial,
        [mean](auto v) {
          const auto d = v - mean;
          return std::array{d * d};
        },
        x + view.offset(i, ch));
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

template <class T>
void batchnorm_forward_infer_channel(const BatchNormShape& s, int64_t ch, const T* x,
                                     const T* gamma, const T* beta, const T* running_mean,
                                     const T* running_var, T eps, T* y) {
  const double invstd =
      1.0 / std::sqrt(static_cast<double>(running_var[ch]) + static_cast<double>(eps));
  const double mean = static_cast<double>(running_mean[ch]);
  const double scale = static_cast<double>(gamma[ch]) * invstd;
  normalize_channel(s, ChannelView{s.c, s.spatial}, ch, x, mean, scale,
                    static_cast<double>(beta[ch]), y);
}

template <class T>
void batchnorm_backward_channel(const BatchNormShape& s, int64_t ch, const T* x, const T* dy,
                                const T* gamma, const T* save_mean, const T* save_invstd, T* dx,
                                T* dgamma, T* dbeta, GradMode mode) {
  const ChannelView view{s.c, s.spatial};
  const int64_t count = s.n * s.spatial;
  const double m = static_cast<double>(count);
  const double mean = static_cast<double>(save_mean[ch]);
  const double invstd = static_cast<double>(save_invstd[ch]);
  // Σdy and Σdy·(x - mean); invstd multiplies the second sum once instead of every term.
  LaneSums<2, kSumLanes<T>> sums;
  for (int64_t i = 0; i < s.n; ++i)
    sums.add_row(
        s.spatial,
        [mean](auto g, auto v) {
          return std::array{g, g * (v - mean)};
        },
        dy + view.offset(i, ch), x + view.offset(i, ch));
  const double sum_g = sums.total(0), sum_g_xhat = sums.total(1) * invstd;
  // Null parameter gradients are tolerated so a frozen BatchNorm can still pass dx on.
  if (dgamma) store_grad(mode, dgamma[ch], static_cast<T>(sum_g_xhat));
  if (dbeta) store_grad(mode, dbeta[ch], static_cast<T>(sum_g));
  if (!dx || count == 0) return;
  // The mean and variance depend on every x of the channel, hence the two batch sums that
  // remove the gradient components along 1 and along x̂.
  const double scale = static_cast<double>(gamma[ch]) * invstd / m;
  const double a = scale * m, b = -scale * invstd * sum_g_xhat, c = scale * sum_g;
  if (mode == GradMode::Accumulate)
    channel_dx<true>(s, view, ch, x, dy, mean, a, b, c, dx);
  else
    channel_dx<false>(s, view, ch, x, dy, mean, a, b, c, dx);
}

}  // namespace polytask::kernels::cpu::POLYTASK_MICROKERNEL_NAMESPACE
