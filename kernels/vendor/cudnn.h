// cuDNN as a second oracle for tests and the baseline for benchmarks — never used by the
// engine. Present only when the build found cuDNN (POLYTASK_WITH_CUDNN); code that uses it
// sits behind that define and skips, saying so, without it.
//
// This header holds what every cuDNN wrapper shares: the cuDNN flavour of the one check macro,
// a handle, and an NCHW float tensor descriptor. The op wrappers live beside it
// (vendor/cudnn_conv.h, vendor/cudnn_ops.h).
#pragma once

#include <cudnn.h>

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/error.h"

namespace polytask::kernels::vendor {
namespace detail {
[[noreturn]] inline void throw_cudnn_error(cudnnStatus_t status, const char* call,
                                           const char* file, int line) {
  fail("cuDNN error ", cudnnGetErrorString(status), " in ", call, " at ", file, ":", line);
}
}  // namespace detail
}  // namespace polytask::kernels::vendor

#define POLYTASK_CUDNN_CHECK(call)                                                          \
  do {                                                                                      \
    const cudnnStatus_t polytask_status_ = (call);                                          \
    if (polytask_status_ != CUDNN_STATUS_SUCCESS)                                           \
      ::polytask::kernels::vendor::detail::throw_cudnn_error(polytask_status_, #call, __FILE__, \
                                                             __LINE__);                     \
  } while (0)

namespace polytask::kernels::vendor {

// Owns a cuDNN handle bound to a stream.
class CudnnHandle {
 public:
  explicit CudnnHandle(cuda::Stream stream = nullptr) {
    POLYTASK_CUDNN_CHECK(cudnnCreate(&handle_));
    POLYTASK_CUDNN_CHECK(cudnnSetStream(handle_, stream));
  }
  ~CudnnHandle() { cudnnDestroy(handle_); }
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
  cudnnHandle_t get() const { return handle_; }

 private:
  cudnnHandle_t handle_ = nullptr;
};

// A float NCHW tensor descriptor (C = features, H = W = 1 for (N, F) tensors).
class TensorDescriptor {
 public:
  TensorDescriptor(int64_t n, int64_t c, int64_t h, int64_t w) {
    POLYTASK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_));
    POLYTASK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                    int(n), int(c), int(h), int(w)));
  }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(desc_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

}  // namespace polytask::kernels::vendor
