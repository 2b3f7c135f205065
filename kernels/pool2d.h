// Max pooling over NCHW tensors, 'valid' windows (Keras MaxPooling2D's default).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"

namespace polytask::kernels {

struct MaxPool2dShape {
  int64_t n = 0, c = 0, h_in = 0, w_in = 0;
  int64_t k_h = 2, k_w = 2, stride_h = 2, stride_w = 2;
  int64_t h_out = 0, w_out = 0;
};

// h_out = floor((h_in - k_h) / stride_h) + 1; throws polytask::Error if the window does not fit.
MaxPool2dShape max_pool2d_shape(int64_t n, int64_t c, int64_t h_in, int64_t w_in, int64_t k_h,
                                int64_t k_w, int64_t stride_h, int64_t stride_w);

namespace cpu {

// y (N, C, H_out, W_out) = window maxima of x; argmax (same shape as y) receives the index of
// the chosen element inside its (H_in * W_in) plane. Ties pick the first element in row-major
// window order; NaN propagates (a NaN is always chosen).
template <class T>
void max_pool2d_forward(const MaxPool2dShape& s, const T* x, T* y, int32_t* argmax);

// dx (N, C, H_in, W_in): each dy element goes to the position its argmax names.
// relu_y fuses the backward of a ReLU before the pool into this pass: when the pool's input is
// a ReLU's output, pass the pool's own output y (the window maxima, each the ReLU's output at
// the position its argmax names) and dx becomes the gradient of the ReLU's input, dy passing
// only where y > 0 — the ReLU backward's rule, without its pass over the larger activation.
// nullptr: the plain pool backward.
template <class T>
void max_pool2d_backward(const MaxPool2dShape& s, const T* dy, const int32_t* argmax, T* dx,
                         GradMode mode, const T* relu_y = nullptr);

}  // namespace cpu

namespace cuda {

// The device versions (kernels/cuda/pool2d.cu), float only, asynchronous on `stream`; every
// pointer is device memory. Both equal the CPU reference bit for bit: forward applies the same
// comparisons in the same window order (ties to the first in row-major order, the first NaN
// wins), and backward adds each input's contributions in the CPU's order (outputs in row-major
// order, starting from dx with Accumulate, from 0 with Overwrite).
void max_pool2d_forward(const MaxPool2dShape& s, const float* x, float* y, int32_t* argmax,
                        Stream stream);

// A gather without atomics: each dx element visits the windows that contain it (one at most
// when stride >= kernel, several when windows overlap) and sums the dy of those whose argmax
// names it, so every dx element is written, deterministically, by one thread. argmax must come
// from max_pool2d_forward with the same shape (each index lies inside its own window).
// relu_y as on the CPU (device memory, or nullptr).
void max_pool2d_backward(const MaxPool2dShape& s, const float* dy, const int32_t* argmax,
                         float* dx, GradMode mode, Stream stream, const float* relu_y = nullptr);

}  // namespace cuda
}  // namespace polytask::kernels
