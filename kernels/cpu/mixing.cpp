// CPU reference for the mixing ops (kernels/mixing.h). Each output element or row is computed
// by one thread in a fixed order (sums in double, rounded once), so the results are the same for
// any thread count; threads split rows, or, for the alpha gradient, the inputs.
#include "kernels/mixing.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/error.h"

namespace polytask::kernels::cpu {

namespace {

// An exp and a division cost several loads and stores (see parallel.h's work units).
constexpr int64_t kExpWork = 4;

void check_inputs(const char* op, int inputs) {
  if (inputs < 1 || inputs > kMaxCrossStitchInputs)
    fail(op, ": ", inputs, " inputs; it takes 1 to ", kMaxCrossStitchInputs);
}

}  // namespace

template <class T>
void softmax_forward(int64_t rows, int64_t features, const T* x, T* y) {
  const int threads = parallel_threads(rows * features * kExpWork);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * features;
    T* out = y + r * features;
    if (features == 0) continue;
    double max = double(row[0]);
    for (int64_t j = 1; j < features; ++j)
      if (double(row[j]) > max) max = double(row[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < features; ++j) sum += std::exp(double(row[j]) - max);
    for (int64_t j = 0; j < features; ++j) out[j] = T(std::exp(double(row[j]) - max) / sum);
  }
}

template <class T>
void softmax_backward(int64_t rows, int64_t features, const T* y, const T* dy, T* dx,
                      GradMode mode) {
  const int threads = parallel_threads(rows * features);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = y + r * features;
    const T* g = dy + r * features;
    T* out = dx + r * features;
    double dot = 0.0;
    for (int64_t j = 0; j < features; ++j) dot += double(p[j]) * double(g[j]);
    for (int64_t j = 0; j < features; ++j)
      store_grad(mode, out[j], T(double(p[j]) * (double(g[j]) - dot)));
  }
}

template <class T>
void mixture_forward(const MixtureShape& s, const T* experts, const T* gate, T* y) {
  const int64_t row_size = s.experts * s.width;
  const int threads = parallel_threads(s.rows * row_size);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* x = experts + r * row_size;
    const T* g = gate + r * s.experts;
    for (int64_t j = 0; j < s.width; ++j) {
      double sum = 0.0;
      for (int64_t e = 0; e < s.experts; ++e) sum += double(g[e]) * double(x[e * s.width + j]);
      y[r * s.width + j] = T(sum);
    }
  }
}

template <class T>
void mixture_backward(const MixtureShape& s, const T* experts, const T* gate, const T* dy,
                      T* dexperts, GradMode experts_mode, T* dgate, GradMode gate_mode) {
  const int64_t row_size = s.experts * s.width;
  const int threads = parallel_threads(s.rows * row_size * 2);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < s.rows; ++r) {
    const T* g = dy + r * s.width;
    for (int64_t e = 0; e < s.experts; ++e) {
      const int64_t at = r * row_size + e * s.width;
      if (dexperts != nullptr) {
        const T weight = gate[r * s.experts + e];
        for (int64_t j = 0; j < s.width; ++j)
          store_grad(experts_mode, dexperts[at + j], weight * g[j]);
      }
      if (dgate != nullptr) {
        double sum = 0.0;
        for (int64_t j = 0; j < s.width; ++j) sum += double(experts[at + j]) * double(g[j]);
        store_grad(gate_mode, dgate[r * s.experts + e], T(sum));
      }
    }
  }
}

template <class T>
void cross_stitch_forward(int64_t count, int inputs, const T* const* xs, const T* alpha, T* y) {
  check_inputs("cross_stitch_forward", inputs);
  const int threads = parallel_threads(count * inputs);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < count; ++i) {
    double sum = 0.0;
    for (int s = 0; s < inputs; ++s) sum += double(alpha[s]) * double(xs[s][i]);
    y[i] = T(sum);
  }
}

template <class T>
void cross_stitch_backward_input(int64_t count, const T* alpha, int input, const T* dy, T* dx,
                                 GradMode mode) {
  const T scale = alpha[input];
  const int threads = parallel_threads(count);
  if (mode == GradMode::Accumulate) {
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
    for (int64_t i = 0; i < count; ++i) dx[i] += scale * dy[i];
  } else {
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
    for (int64_t i = 0; i < count; ++i) dx[i] = scale * dy[i];
  }
}

template <class T>
void cross_stitch_backward_alpha(int64_t count, int inputs, const T* const* xs, const T* dy,
                                 T* dalpha, GradMode mode) {
  check_inputs("cross_stitch_backward_alpha", inputs);
  // One thread per alpha, each summing its input in index order: the same bits for any thread
  // count (a split of one sum across threads would change its order).
  const int threads = std::min(parallel_threads(count * inputs), inputs);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int s = 0; s < inputs; ++s) {
    const T* x = xs[s];
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i) sum += double(x[i]) * double(dy[i]);
    store_grad(mode, dalpha[s], T(sum));
  }
}

#define POLYTASK_INSTANTIATE_MIXING(T)                                                          \
  template void softmax_forward<T>(int64_t, int64_t, const T*, T*);                             \
  template void softmax_backward<T>(int64_t, int64_t, const T*, const T*, T*, GradMode);        \
  template void mixture_forward<T>(const MixtureShape&, const T*, const T*, T*);                \
  template void mixture_backward<T>(const MixtureShape&, const T*, const T*, const T*, T*,      \
                                    GradMode, T*, GradMode);                                    \
  template void cross_stitch_forward<T>(int64_t, int, const T* const*, const T*, T*);           \
  template void cross_stitch_backward_input<T>(int64_t, const T*, int, const T*, T*, GradMode); \
  template void cross_stitch_backward_alpha<T>(int64_t, int, const T* const*, const T*, T*,     \
                                               GradMode);

POLYTASK_INSTANTIATE_MIXING(float)
POLYTASK_INSTANTIATE_MIXING(double)

#undef POLYTASK_INSTANTIATE_MIXING

}  // namespace polytask::kernels::cpu
