#include "kernels/gemm.h"

#include <cblas.h>

#include "kernels/cpu/sgemm.h"

namespace polytask::kernels::cpu {

namespace {
CBLAS_TRANSPOSE to_cblas(Transpose t) { return t == Transpose::Yes ? CblasTrans : CblasNoTrans; }

// An empty inner dimension makes the product zero, and its row strides may then be 0, which
// cblas rejects as an invalid argument: do C = beta·C here instead.
template <class T>
bool empty_product(int64_t m, int64_t n, int64_t k, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return true;
  if (k != 0) return false;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
  return true;
}
}  // namespace

// float: our packed micro-kernels, chosen for this CPU at run time (kernels/cpu/sgemm.h).
template <>
void gemm<float>(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                 float beta, float* c, int64_t ldc) {
  sgemm(active_micro_kernels(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// double: OpenBLAS, the reference the gradient checks run in.
template <>
void gemm<double>(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k,
                  double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
                  double beta, double* c, int64_t ldc) {
  if (empty_product(m, n, k, beta, c, ldc)) return;
  cblas_dgemm(CblasRowMajor, to_cblas(trans_a), to_cblas(trans_b), blasint(m), blasint(n),
              blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc));
}

}  // namespace polytask::kernels::cpu
