// The stream type of the CUDA kernel declarations, without pulling the CUDA headers into
// every file that includes a kernel header (cudaStream_t is this same pointer type).
#pragma once

struct CUstream_st;

namespace polytask::kernels::cuda {
using Stream = CUstream_st*;
}  // namespace polytask::kernels::cuda
