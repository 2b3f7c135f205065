// The float convolution on one given micro-kernel variant. conv2d_forward<float> and friends
// (kernels/conv2d.h) call these with active_micro_kernels(); tests and benchmarks call them
// with every variant the CPU supports.
#pragma once

#include "kernels/conv2d.h"
#include "kernels/cpu/sgemm.h"

namespace polytask::kernels::cpu {

void conv2d_forward_fast(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                         const float* w, const float* b, float* y, bool relu);
void conv2d_backward_data_fast(const MicroKernels& uk, const Conv2dShape& s, const float* dy,
                               const float* w, float* dx, GradMode mode);
void conv2d_backward_filter_fast(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                                 const float* dy, float* dw, float* db, GradMode mode);

}  // namespace polytask::kernels::cpu
