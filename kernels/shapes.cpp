// Output-size arithmetic shared by the CPU and CUDA kernels.
#include "kernels/conv2d.h"
#include "kernels/error.h"
#include "kernels/pool2d.h"

namespace polytask::kernels {

namespace {
int64_t same_padding_before(int64_t in, int64_t k, int64_t stride, int64_t out) {
  const int64_t total = (out - 1) * stride + k - in;
  return total > 0 ? total / 2 : 0;
}
}  // namespace

Conv2dShape conv2d_shape(int64_t n, int64_t c_in, int64_t h_in, int64_t w_in, int64_t c_out,
                         int64_t k_h, int64_t k_w, int64_t stride_h, int64_t stride_w,
                         Padding padding) {
  if (n < 0 || c_in <= 0 || h_in <= 0 || w_in <= 0 || c_out <= 0 || k_h <= 0 || k_w <= 0 ||
      stride_h <= 0 || stride_w <= 0)
    fail("conv2d: invalid geometry input (", n, ", ", c_in, ", ", h_in, ", ", w_in, "), ", c_out,
         " filters of ", k_h, "x", k_w, ", stride ", stride_h, "x", stride_w);
  Conv2dShape s;
  s.n = n, s.c_in = c_in, s.h_in = h_in, s.w_in = w_in, s.c_out = c_out;
  s.k_h = k_h, s.k_w = k_w, s.stride_h = stride_h, s.stride_w = stride_w;
  if (padding == Padding::Valid) {
    if (k_h > h_in || k_w > w_in)
      fail("conv2d: a ", k_h, "x", k_w, " kernel does not fit a ", h_in, "x", w_in,
           " input with 'valid' padding");
    s.h_out = (h_in - k_h) / stride_h + 1;
    s.w_out = (w_in - k_w) / stride_w + 1;
  } else {
    s.h_out = (h_in + stride_h - 1) / stride_h;
    s.w_out = (w_in + stride_w - 1) / stride_w;
    s.pad_top = same_padding_before(h_in, k_h, stride_h, s.h_out);
    s.pad_left = same_padding_before(w_in, k_w, stride_w, s.w_out);
  }
  return s;
}

MaxPool2dShape max_pool2d_shape(int64_t n, int64_t c, int64_t h_in, int64_t w_in, int64_t k_h,
                                int64_t k_w, int64_t stride_h, int64_t stride_w) {
  if (n < 0 || c <= 0 || k_h <= 0 || k_w <= 0 || stride_h <= 0 || stride_w <= 0)
    fail("max_pool2d: invalid geometry (", n, ", ", c, ", ", h_in, ", ", w_in, "), window ", k_h,
         "x", k_w, ", stride ", stride_h, "x", stride_w);
  if (k_h > h_in || k_w > w_in)
    fail("max_pool2d: a ", k_h, "x", k_w, " window does not fit a ", h_in, "x", w_in, " input");
  MaxPool2dShape s;
  s.n = n, s.c = c, s.h_in = h_in, s.w_in = w_in;
  s.k_h = k_h, s.k_w = k_w, s.stride_h = stride_h, s.stride_w = stride_w;
  s.h_out = (h_in - k_h) / stride_h + 1;
  s.w_out = (w_in - k_w) / stride_w + 1;
  return s;
}

}  // namespace polytask::kernels
