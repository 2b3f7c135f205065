// cuBLAS as a second oracle for tests and the baseline for benchmarks — never used by the
// engine. A handle that owns its cublasHandle_t, a row-major SGEMM in our convention, and the
// cuBLAS flavour of the one check macro.
#pragma once

#include <cublas_v2.h>

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/error.h"
#include "kernels/gemm.h"
#include "kernels/precision.h"

namespace polytask::kernels::vendor {

namespace detail {
[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call,
                                            const char* file, int line) {
  fail("cuBLAS error ", cublasGetStatusName(status), " (", cublasGetStatusString(status), ") in ",
       call, " at ", file, ":", line);
}
}  // namespace detail

}  // namespace polytask::kernels::vendor

#define POLYTASK_CUBLAS_CHECK(call)                                                              \
  do {                                                                                           \
    const cublasStatus_t polytask_status_ = (call);                                              \
    if (polytask_status_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::polytask::kernels::vendor::detail::throw_cublas_error(polytask_status_, #call, __FILE__, \
                                                              __LINE__);                         \
  } while (0)

namespace polytask::kernels::vendor {

// Owns a cuBLAS handle set to plain FP32 arithmetic (CUBLAS_DEFAULT_MATH: no TF32 tensor
// cores), so that comparisons with our FP32 SGEMM are like for like.
class CublasHandle {
 public:
  CublasHandle();
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;

  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

// C = alpha · op(A) · op(B) + beta · C with cuda::gemm's row-major convention: op(A) (m, k),
// op(B) (k, n), C (m, n), row strides lda/ldb/ldc. Asynchronous on `stream`.
void cublas_sgemm_row_major(const CublasHandle& handle, Transpose trans_a, Transpose trans_b,
                            int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                            int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                            int64_t ldc, cuda::Stream stream);

// The same product, FP32 in memory, through cublasGemmEx with the compute type for `precision`:
// CUBLAS_COMPUTE_32F (FP32), CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores, operands converted to
// TF32) or CUBLAS_COMPUTE_32F_FAST_16BF (tensor cores, operands converted to BF16), FP32
// accumulation in each — the baseline for cuda::gemm with GemmOptions::precision. (The
// environment variable NVIDIA_TF32_OVERRIDE=0 turns cuBLAS's TF32 off: keep it unset.)
void cublas_gemm_row_major(const CublasHandle& handle, MathPrecision precision, Transpose trans_a,
                           Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                           float* c, int64_t ldc, cuda::Stream stream);

}  // namespace polytask::kernels::vendor
