// Row-major general matrix product C = alpha * op(A) * op(B) + beta * C.
//
// The CPU version is templated on the scalar type so that gradient checks can run the whole
// reference path in double: float runs polytask's own micro-kernels (kernels/cpu/sgemm.h, one
// variant per instruction set, chosen at run time), double the BLAS the build found (OpenBLAS).
// The CUDA version (kernels/cuda/gemm.cu) is a handwritten tiled SGEMM with the same
// row-major convention, and optionally a tensor-core GEMM with TF32 or BF16 operands
// (GemmOptions::precision; FP32 storage and FP32 accumulation either way, see precision.h).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/precision.h"

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
// The tensor-core kernels have the same three sizes (warps of 16x16 wmma tiles instead of
// threads of 8x8 or 4x4 outputs) and the same property: whatever the tile, an output element
// is one accumulator fed the same mma steps over k in increasing order.
enum class GemmTiles {
  Auto,
  Large,   // 128x128 block tile, 8x8 outputs per thread, 256 threads (tensor cores: 8 warps)
  Medium,  // 64x64 block tile, 4x4 outputs per thread, 256 threads (tensor cores: 4 warps)
  Small,   // 32x32 block tile, 4x4 outputs per thread, 64 threads (tensor cores: 4 warps)
};

struct GemmOptions {
  GemmTiles tiles = GemmTiles::Auto;
  // When set, bias[j] is added to every row of C in the epilogue: C = alpha·op(A)·op(B) +
  // beta·C + 1·biasᵀ (the dense layer's forward, without a separate pass over C).
  const float* column_bias = nullptr;  // (n) or nullptr
  // FP32: the SGEMM above, bit-exact as always. TF32 / BF16: a tensor-core kernel (nvcuda::wmma)
  // that rounds each element of op(A) and op(B) to TF32 (nearest, ties away from zero, as
  // __float_to_tf32) or BF16 (nearest even) as it stages it, multiplies on the tensor cores
  // and accumulates in FP32; A, B, C and the bias stay FP32 in memory and the epilogue
  // (alpha, beta, bias) is the FP32 kernel's. Deterministic run to run, like the SGEMM; but
  // the order in which a tensor-core instruction adds its products is the hardware's, so
  // results agree with a CPU reference on rounded operands to FP32 accumulation error, not
  // to the bit. Needs compute capability 8.0 or later.
  MathPrecision precision = MathPrecision::FP32;
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
