// How many threads one SM of the architecture being compiled holds, for the minimum-blocks
// argument of __launch_bounds__: ptxas warns (an error with -Werror=all-warnings) and ignores a
// minimum whose blocks do not fit, and a build covers SMs of 1024 (Turing), 1536 (GA10x, Ada)
// and 2048 (A100, H100) threads.
#pragma once

namespace polytask::kernels::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 750
inline constexpr int kMaxThreadsPerSm = 1024;
#elif defined(__CUDA_ARCH__) && \
    (__CUDA_ARCH__ == 860 || __CUDA_ARCH__ == 870 || __CUDA_ARCH__ == 890)
inline constexpr int kMaxThreadsPerSm = 1536;
#else
inline constexpr int kMaxThreadsPerSm = 2048;  // sm_80, sm_90; the host pass; the emulator
#endif

// `wanted` resident blocks of `threads` threads, or as many as the SM holds.
constexpr int min_blocks_per_sm(int threads, int wanted) {
  return wanted * threads <= kMaxThreadsPerSm ? wanted : kMaxThreadsPerSm / threads;
}

}  // namespace polytask::kernels::cuda
