// Row-major general matrix product C = alpha * op(A) * op(B) + beta * C.
//
// The CPU version forwards to the BLAS the build found (OpenBLAS on Debian); it is templated
// on the scalar type so that gradient checks can run the whole reference path in double.
// The CUDA version (kernels/cuda/gemm.cu) is a handwritten tiled SGEMM with the same
// row-major convention.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace polytask::kernels {

enum class Transpose { No, Yes };

namespace cpu {

// op(A) is (m, k), op(B) is (k, n), C is (m, n); lda/ldb/ldc are row strides of the stored
// (untransposed) matrices.
template <class T>
void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace cpu

namespace cuda {

// Which block tile the SGEMM uses. Auto picks the largest tile whose grid still fills the GPU;
// the others exist so tests can exercise every configuration on small matrices and benchmarks
// can compare them. Every choice gives bit-identical results: each output element is one
// thread's fused multiply-add chain over k in increasing order, whatever the tiling.
enum class GemmTiles {
  Auto,
  Large,   // 128x128 block tile, 8x8 outputs per thread, 256 threads
  Medium,  // 64x64 block tile, 4x4 outputs per thread, 256 threads
  Small,   // 32x32 block tile, 4x4 outputs per thread, 64 threads
};

struct GemmOptions {
  GemmTiles tiles = GemmTiles::Auto;
  // When set, bias[j] is added to every row of C in the epilogue: C = alpha·op(A)·op(B) +
  // beta·C + 1·biasᵀ (the dense layer's forward, without a separate pass over C).
  const float* column_bias = nullptr;  // (n) or nullptr
};

// Same contract as cpu::gemm, float only, asynchronous on `stream`: op(A) (m, k), op(B) (k, n),
// C (m, n), all row-major with row strides lda/ldb/ldc. Supports the layouts the dense and
// conv layers need — (No, No), (Yes, No), (No, Yes); (Yes, Yes) throws polytask::Error.
// beta == 0 never reads C (it may hold NaN); alpha == 0 or k == 0 never reads A or B and gives
// C = beta·C. Deterministic: no atomics, a fixed summation order per element.
void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc, Stream stream);

void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc, Stream stream, const GemmOptions& options);

}  // namespace cuda
}  // namespace polytask::kernels
