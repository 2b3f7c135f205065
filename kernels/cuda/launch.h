// Every kernel launch goes through launch(): it launches on the caller's stream, checks the
// launch, and, with the debug switch on, synchronises and names the op whose kernel faulted
// (asynchronous faults otherwise surface at some later, unrelated call).
//
// Under POLYTASK_CUDA_EMULATION the same call runs the kernel on the CPU emulator instead.
#pragma once

#include <cstdint>

#include "kernels/cuda/check.h"
#include "kernels/cuda/stream.h"
#include "kernels/cuda/sync_switch.h"

namespace polytask::kernels::cuda {

namespace detail {
[[noreturn]] void launch_failed(const char* op, cudaError_t status, const char* when);
void after_launch(const char* op, Stream stream);
}  // namespace detail

inline unsigned blocks_for(int64_t count, unsigned threads, unsigned max_blocks = 65535u * 16u) {
  const int64_t blocks = (count + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : (blocks > int64_t(max_blocks) ? int64_t(max_blocks) : blocks));
}

template <class... KernelArgs, class... Args>
void launch(const char* op, void (*kernel)(KernelArgs...), dim3 grid, dim3 block,
            unsigned shared_bytes, Stream stream, Args&&... args) {
#if defined(POLYTASK_CUDA_EMULATION)
  // By value: a launch recorded into a graph runs after this frame is gone.
  emulator::launch(op, grid, block, shared_bytes, stream,
                   [kernel, ... arguments = KernelArgs(args)] { kernel(arguments...); });
#else
  kernel<<<grid, block, shared_bytes, stream>>>(KernelArgs(args)...);
#endif
  detail::after_launch(op, stream);
}

}  // namespace polytask::kernels::cuda
