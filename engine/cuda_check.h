// The one checking macro for CUDA runtime calls: on failure it throws polytask::Error with the
// call's text, the error string and file:line, so tests can report it and the CLI can print it.
// Kernel launches are checked by following them with POLYTASK_CUDA_CHECK(cudaGetLastError()).
#pragma once

#if defined(POLYTASK_WITH_CUDA)
#include <cuda_runtime_api.h>

#include "kernels/error.h"

namespace polytask::detail {
[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                          int line) {
  fail("CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") in ", call,
       " at ", file, ":", line);
}
}  // namespace polytask::detail

#define POLYTASK_CUDA_CHECK(call)                                                   \
  do {                                                                              \
    const cudaError_t polytask_status_ = (call);                                    \
    if (polytask_status_ != cudaSuccess)                                            \
      ::polytask::detail::throw_cuda_error(polytask_status_, #call, __FILE__, __LINE__); \
  } while (0)
#endif
