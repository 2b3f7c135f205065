// CPU reference for the fully connected layer: three GEMM calls plus a bias broadcast and a
// deterministic column sum.
#include "kernels/dense.h"

#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"

namespace polytask::kernels::cpu {

namespace {

template <class T>
T beta_for(GradMode mode) {
  return mode == GradMode::Accumulate ? T(1) : T(0);
}

}  // namespace

template <class T>
void dense_forward(const DenseShape& s, const T* x, const T* w, const T* b, T* y) {
  T beta = T(0);
  if (b != nullptr) {
    // Seeding y with the bias and letting GEMM add onto it (beta = 1) costs one write pass and
    // no extra read of y after the product.
#pragma omp parallel for if (s.n * s.out > kParallelThreshold)
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.out; ++j) y[i * s.out + j] = b[j];
    beta = T(1);
  }
  gemm(Transpose::No, Transpose::Yes, s.n, s.out, s.in, T(1), x, s.in, w, s.in, beta, y, s.out);
}

template <class T>
void dense_backward_data(const DenseShape& s, const T* dy, const T* w, T* dx, GradMode mode) {
  gemm(Transpose::No, Transpose::No, s.n, s.in, s.out, T(1), dy, s.out, w, s.in,
       beta_for<T>(mode), dx, s.in);
}

template <class T>
void dense_backward_filter(const DenseShape& s, const T* x, const T* dy, T* dw, T* db,
                           GradMode mode) {
  gemm(Transpose::Yes, Transpose::No, s.out, s.in, s.n, T(1), dy, s.out, x, s.in,
       beta_for<T>(mode), dw, s.in);
  if (db == nullptr) return;
  // One thread owns each column and sums its rows in order, so db is bit-identical for any
  // thread count; the sum runs in double so float and double agree to float rounding.
#pragma omp parallel for if (s.n * s.out > kParallelThreshold)
  for (int64_t j = 0; j < s.out; ++j) {
    double sum = 0.0;
    for (int64_t i = 0; i < s.n; ++i) sum += static_cast<double>(dy[i * s.out + j]);
    store_grad(mode, db[j], static_cast<T>(sum));
  }
}

#define POLYTASK_INSTANTIATE_DENSE(T)                                                        \
  template void dense_forward<T>(const DenseShape&, const T*, const T*, const T*, T*);       \
  template void dense_backward_data<T>(const DenseShape&, const T*, const T*, T*, GradMode); \
  template void dense_backward_filter<T>(const DenseShape&, const T*, const T*, T*, T*, GradMode);

POLYTASK_INSTANTIATE_DENSE(float)
POLYTASK_INSTANTIATE_DENSE(double)

#undef POLYTASK_INSTANTIATE_DENSE

}  // namespace polytask::kernels::cpu
