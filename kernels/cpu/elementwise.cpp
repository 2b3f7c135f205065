// CPU reference for the elementwise ops. Every loop is independent per element, so OpenMP
// threads and SIMD lanes give bit-identical results for any thread count.
#include "kernels/elementwise.h"
#include "kernels/cpu/parallel.h"

namespace polytask::kernels::cpu {

template <class T>
void fill(int64_t count, T value, T* y) {
  const int threads = parallel_threads(count);
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
  for (int64_t i = 0; i < count; ++i) y[i] = value;
}

template <class T>
void copy(int64_t count, const T* x, T* y) {
  const int threads = parallel_threads(count);
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
  for (int64_t i = 0; i < count; ++i) y[i] = x[i];
}

template <class T>
void relu_forward(int64_t count, const T* x, T* y) {
  const int threads = parallel_threads(count);
  // Written as `x < 0 ? 0 : x` so a NaN input stays NaN (a diverging run should show NaN, not
  // be silently masked by ReLU).
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}

template <class T>
void relu_backward(int64_t count, const T* y, const T* dy, T* dx, GradMode mode) {
  const int threads = parallel_threads(count);
  // dy is loaded unconditionally: a conditional load cannot be vectorised without masked
  // loads, and the branch it becomes mispredicts on half the elements (18x slower, measured).
  if (mode == GradMode::Accumulate) {
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
    for (int64_t i = 0; i < count; ++i) {
      const T g = dy[i];
      dx[i] += y[i] > T(0) ? g : T(0);
    }
  } else {
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
    for (int64_t i = 0; i < count; ++i) {
      const T g = dy[i];
      dx[i] = y[i] > T(0) ? g : T(0);
    }
  }
}

template <class T>
void add_forward(int64_t count, const T* a, const T* b, T* y) {
  const int threads = parallel_threads(count);
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
  for (int64_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
}

template <class T>
void scale_grad(int64_t count, T scale, const T* dy, T* dx, GradMode mode) {
  const int threads = parallel_threads(count);
  // The mode test is hoisted out of the loop so each branch vectorises cleanly.
  if (mode == GradMode::Accumulate) {
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
    for (int64_t i = 0; i < count; ++i) dx[i] += scale * dy[i];
  } else {
#pragma omp parallel for simd num_threads(threads) if (parallel : threads > 1)
    for (int64_t i = 0; i < count; ++i) dx[i] = scale * dy[i];
  }
}

template <class T>
void concat_forward(int64_t outer, int num_parts, const int64_t* part_inner, const T* const* parts,
                    T* y) {
  int64_t total = 0;
  for (int p = 0; p < num_parts; ++p) total += part_inner[p];
  const int threads = parallel_threads(outer * total);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t o = 0; o < outer; ++o) {
    T* row = y + o * total;
    for (int p = 0; p < num_parts; ++p) {
      const int64_t inner = part_inner[p];
      const T* src = parts[p] + o * inner;
      for (int64_t k = 0; k < inner; ++k) row[k] = src[k];
      row += inner;
    }
  }
}

template <class T>
void concat_backward(int64_t outer, int num_parts, const int64_t* part_inner, const T* dy,
                     T* const* dparts, GradMode mode) {
  int64_t total = 0;
  for (int p = 0; p < num_parts; ++p) total += part_inner[p];
  const int threads = parallel_threads(outer * total);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (int64_t o = 0; o < outer; ++o) {
    const T* row = dy + o * total;
    for (int p = 0; p < num_parts; ++p) {
      const int64_t inner = part_inner[p];
      if (dparts[p] != nullptr) {
        T* dst = dparts[p] + o * inner;
        for (int64_t k = 0; k < inner; ++k) store_grad(mode, dst[k], row[k]);
      }
      row += inner;
    }
  }
}

#define POLYTASK_INSTANTIATE_ELEMENTWISE(T)                                           \
  template void fill<T>(int64_t, T, T*);                                              \
  template void copy<T>(int64_t, const T*, T*);                                       \
  template void relu_forward<T>(int64_t, const T*, T*);                               \
  template void relu_backward<T>(int64_t, const T*, const T*, T*, GradMode);          \
  template void add_forward<T>(int64_t, const T*, const T*, T*);                      \
  template void scale_grad<T>(int64_t, T, const T*, T*, GradMode);                    \
  template void concat_forward<T>(int64_t, int, const int64_t*, const T* const*, T*); \
  template void concat_backward<T>(int64_t, int, const int64_t*, const T*, T* const*, GradMode);

POLYTASK_INSTANTIATE_ELEMENTWISE(float)
POLYTASK_INSTANTIATE_ELEMENTWISE(double)

#undef POLYTASK_INSTANTIATE_ELEMENTWISE

}  // namespace polytask::kernels::cpu
