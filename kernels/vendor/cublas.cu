#include <limits>

#include "kernels/vendor/cublas.h"

namespace polytask::kernels::vendor {

namespace {
cublasOperation_t to_cublas(Transpose t) { return t == Transpose::Yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

int checked_int(const char* what, int64_t value) {
  if (value < 0 || value > std::numeric_limits<int>::max())
    fail("cublas_sgemm_row_major: ", what, " = ", value, " does not fit cuBLAS's int");
  return int(value);
}
}  // namespace

CublasHandle::CublasHandle() {
  POLYTASK_CUBLAS_CHECK(cublasCreate(&handle_));
  POLYTASK_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
  POLYTASK_CUBLAS_CHECK(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_HOST));
}

CublasHandle::~CublasHandle() {
  if (handle_ != nullptr) cublasDestroy(handle_);
}

void cublas_sgemm_row_major(const CublasHandle& handle, Transpose trans_a, Transpose trans_b,
                            int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                            int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                            int64_t ldc, cuda::Stream stream) {
  // A row-major matrix with row stride ld is its transpose in column-major order with leading
  // dimension ld, so row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the
  // operands (and m with n) and keep each one's transpose flag.
  POLYTASK_CUBLAS_CHECK(cublasSetStream(handle.get(), stream));
  // cuBLAS rejects a leading dimension below 1 even when the matrix is empty.
  const auto ld = [](int64_t v) { return v < 1 ? int64_t(1) : v; };
  POLYTASK_CUBLAS_CHECK(
      cublasSgemm(handle.get(), to_cublas(trans_b), to_cublas(trans_a), checked_int("n", n),
                  checked_int("m", m), checked_int("k", k), &alpha, b, checked_int("ldb", ld(ldb)),
                  a, checked_int("lda", ld(lda)), &beta, c, checked_int("ldc", ld(ldc))));
}

void cublas_gemm_row_major(const CublasHandle& handle, MathPrecision precision, Transpose trans_a,
                           Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                           float* c, int64_t ldc, cuda::Stream stream) {
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  switch (precision) {
    case MathPrecision::FP32:
      compute = CUBLAS_COMPUTE_32F;
      break;
    case MathPrecision::TF32:
      compute = CUBLAS_COMPUTE_32F_FAST_TF32;
      break;
    case MathPrecision::BF16:
      compute = CUBLAS_COMPUTE_32F_FAST_16BF;
      break;
    default:
      fail("cublas_gemm_row_major: unknown MathPrecision ", int(precision));
  }
  // Row-major C = op(A)·op(B) as column-major Cᵀ = op(B)ᵀ·op(A)ᵀ (see cublas_sgemm_row_major).
  POLYTASK_CUBLAS_CHECK(cublasSetStream(handle.get(), stream));
  const auto ld = [](int64_t v) { return v < 1 ? int64_t(1) : v; };
  POLYTASK_CUBLAS_CHECK(cublasGemmEx(
      handle.get(), to_cublas(trans_b), to_cublas(trans_a), checked_int("n", n),
      checked_int("m", m), checked_int("k", k), &alpha, b, CUDA_R_32F,
      checked_int("ldb", ld(ldb)), a, CUDA_R_32F, checked_int("lda", ld(lda)), &beta, c,
      CUDA_R_32F, checked_int("ldc", ld(ldc)), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace polytask::kernels::vendor
