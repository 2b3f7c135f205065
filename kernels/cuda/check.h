// The one checking macro for CUDA runtime calls: on failure it throws polytask::Error with the
// call's text, the error's name and string and file:line. Kernel launches go through
// kernels/cuda/launch.h, which checks them and names the op.
#pragma once

#include "kernels/cuda/runtime.h"
#include "kernels/error.h"

namespace polytask::kernels::cuda::detail {
[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                          int line) {
  fail("CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") in ", call,
       " at ", file, ":", line);
}
}  // namespace polytask::kernels::cuda::detail

#define POLYTASK_CUDA_CHECK(call)                                                        \
  do {                                                                                   \
    const cudaError_t polytask_status_ = (call);                                         \
    if (polytask_status_ != cudaSuccess)                                                 \
      ::polytask::kernels::cuda::detail::throw_cuda_error(polytask_status_, #call, __FILE__, \
                                                          __LINE__);                     \
  } while (0)
