// 2-D convolution over NCHW tensors with OIHW filters (PyTorch's layouts, so checkpoints map
// one to one onto torch.nn.Conv2d), stride, and Keras-style 'valid' / 'same' padding.
//
// CPU reference: im2col + BLAS GEMM over chunks of the batch. The CUDA versions (a later
// issue) take the same arguments plus a cudaStream_t.
#pragma once

#include <cstdint>

#include "kernels/grad_mode.h"

namespace polytask::kernels {

enum class Padding { Valid, Same };

struct Conv2dShape {
  int64_t n = 0, c_in = 0, h_in = 0, w_in = 0;  // input (N, C, H, W)
  int64_t c_out = 0, k_h = 0, k_w = 0;          // filters (C_out, C_in, K_h, K_w)
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0;  // implicit zero padding; bottom/right follow from h_out
  int64_t h_out = 0, w_out = 0;       // output (N, C_out, H_out, W_out)

  int64_t patch_size() const { return c_in * k_h * k_w; }
  int64_t out_pixels() const { return h_out * w_out; }
  // Multiply-adds of one forward pass, times two.
  double forward_flops() const {
    return 2.0 * double(n) * double(c_out) * double(out_pixels()) * double(patch_size());
  }
};

// Output size and padding as Keras computes them: 'valid' -> floor((in - k) / s) + 1;
// 'same' -> ceil(in / s) with the extra padding row/column at the bottom/right.
// Throws polytask::Error when the kernel does not fit a 'valid' input.
Conv2dShape conv2d_shape(int64_t n, int64_t c_in, int64_t h_in, int64_t w_in, int64_t c_out,
                         int64_t k_h, int64_t k_w, int64_t stride_h, int64_t stride_w,
                         Padding padding);

namespace cpu {

// Scratch elements the CPU kernels need for this shape (an im2col buffer for a chunk of the
// batch, plus room to transpose that chunk's GEMM output).
int64_t conv2d_workspace_elements(const Conv2dShape& s);

// y = conv(x, w) + b. x (N, C_in, H, W); w (C_out, C_in, K_h, K_w); b (C_out) or nullptr;
// y (N, C_out, H_out, W_out) is overwritten.
template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                    T* workspace);

// dx (N, C_in, H, W) from dy (N, C_out, H_out, W_out) and w.
template <class T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx, GradMode mode,
                          T* workspace);

// dw (C_out, C_in, K_h, K_w) and db (C_out, may be nullptr) from x and dy, summed over the batch.
template <class T>
void conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* db,
                            GradMode mode, T* workspace);

}  // namespace cpu
}  // namespace polytask::kernels
