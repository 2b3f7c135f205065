// When CPU kernels go parallel. Starting an OpenMP region costs microseconds and its spinning
// threads compete with OpenBLAS's, so loops over fewer elements than this stay on one thread.
#pragma once

#include <cstdint>

namespace polytask::kernels::cpu {

constexpr int64_t kParallelThreshold = int64_t{1} << 15;

}  // namespace polytask::kernels::cpu
