// The float convolution on one given micro-kernel variant. conv2d_forward<float> and friends
// (kernels/conv2d.h) call these with active_micro_kernels(); tests and benchmarks call them
// with every variant the CPU supports.
#pragma once

#include "kernels/conv2d.h"
#include "kernels/cpu/sgemm.h"

namespace polytask::kernels::cpu {

// Two ways through the micro-kernels (kernels/cpu/conv2d_fast.cpp):
//   Im2col — per chunk of images an im2col buffer, then the packed GEMM (col2im after it for
//            backward-data, row dot products for the filter gradient);
//   Direct — the gather kernels read x (or dy) where it lies, one output pixel per tile row,
//            and the result is transposed back to NCHW: no im2col copy, for deep windows.
// Auto takes Direct when a window holds >= 32 taps and the channels it vectorises over fill half
// a tile. Backward-data is Direct only at stride 1 (with padding <= K - 1); elsewhere Direct
// falls back to Im2col.
enum class ConvPath { Auto, Im2col, Direct };

void conv2d_forward_fast(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                         const float* w, const float* b, float* y, bool relu,
                         ConvPath path = ConvPath::Auto);
void conv2d_backward_data_fast(const MicroKernels& uk, const Conv2dShape& s, const float* dy,
                               const float* w, float* dx, GradMode mode,
                               ConvPath path = ConvPath::Auto);
void conv2d_backward_filter_fast(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                                 const float* dy, float* dw, float* db, GradMode mode,
                                 ConvPath path = ConvPath::Auto);

}  // namespace polytask::kernels::cpu
