// The CUDA runtime as our kernel files and GPU tests see it: the real one when nvcc compiles
// them, or the CPU emulator (kernels/cuda/emulator.h) when a test build compiles the same
// sources as plain C++ with POLYTASK_CUDA_EMULATION, so that kernel logic runs in CI without a
// GPU. Include this instead of <cuda_runtime.h>.
#pragma once

#if defined(POLYTASK_CUDA_EMULATION)
#include "kernels/cuda/emulator.h"
#else
#include <cuda_runtime.h>
#endif
