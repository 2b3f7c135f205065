// Whether this build's kernels can run on the current GPU: the engine's start-up check
// (engine/device.h) asks this before it uses the GPU, so that a GPU the build has no code for
// is refused with a line naming what to rebuild, not with cudaErrorNoKernelImageForDevice at
// the first launch.
#pragma once

#include "kernels/cuda/runtime.h"

namespace polytask::kernels::cuda {

// The CUDA architectures the kernels were compiled for: CMAKE_CUDA_ARCHITECTURES with commas
// ("75-real,80-real,86-real,89-real,90").
const char* compiled_architectures();

// cudaFuncGetAttributes on one of our kernels on the current device: cudaSuccess when the
// fatbinary holds SASS for the GPU or PTX the driver can compile for it;
// cudaErrorNoKernelImageForDevice (or cudaErrorInvalidDeviceFunction) when it holds neither.
cudaError_t kernel_image_status();

}  // namespace polytask::kernels::cuda
