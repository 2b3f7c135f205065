// Row-major general matrix product C = alpha * op(A) * op(B) + beta * C.
//
// The CPU version forwards to the BLAS the build found (OpenBLAS on Debian); it is templated
// on the scalar type so that gradient checks can run the whole reference path in double.
#pragma once

#include <cstdint>

namespace polytask::kernels {

enum class Transpose { No, Yes };

namespace cpu {

// op(A) is (m, k), op(B) is (k, n), C is (m, n); lda/ldb/ldc are row strides of the stored
// (untransposed) matrices.
template <class T>
void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace cpu
}  // namespace polytask::kernels
