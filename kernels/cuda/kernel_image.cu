#include "kernels/cuda/kernel_image.h"

#if !defined(POLYTASK_CUDA_ARCHITECTURES)
#error "the build passes POLYTASK_CUDA_ARCHITECTURES (kernels/CMakeLists.txt)"
#endif

namespace polytask::kernels::cuda {

namespace {
// Compiled with the same architecture flags as every other kernel file, so its image is
// there exactly when theirs are.
__global__ void image_probe_kernel() {}
}  // namespace

const char* compiled_architectures() { return POLYTASK_CUDA_ARCHITECTURES; }

cudaError_t kernel_image_status() {
  cudaFuncAttributes attributes{};
  const cudaError_t status = cudaFuncGetAttributes(&attributes, image_probe_kernel);
  // The error is not sticky; clear it so that the next launch's check does not report it.
  if (status != cudaSuccess) cudaGetLastError();
  return status;
}

}  // namespace polytask::kernels::cuda
