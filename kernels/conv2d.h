// 2-D convolution over NCHW tensors with OIHW filters (PyTorch's layouts, so checkpoints map
// one to one onto torch.nn.Conv2d), stride, and Keras-style 'valid' / 'same' padding.
//
// CPU: float runs polytask's micro-kernels (kernels/cpu/conv2d_fast.cpp: im2col per chunk of
// images on each thread, packed GEMMs, the filter gradient as row dot products); double is the
// reference, im2col + BLAS GEMM over chunks of the batch (kernels/cpu/conv2d.cpp). CUDA
// versions: handwritten implicit-GEMM kernels with the same arguments plus a stream
// (kernels/cuda/conv2d.cu).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"
#include "kernels/precision.h"

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

// y = conv(x, w) + b, then ReLU (v < 0 ? 0 : v) when `relu`. x (N, C_in, H, W);
// w (C_out, C_in, K_h, K_w); b (C_out) or nullptr; y (N, C_out, H_out, W_out) is overwritten.
// float ignores `workspace` (its scratch is per thread) and may get nullptr.
template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                    T* workspace, bool relu = false);

// dx (N, C_in, H, W) from dy (N, C_out, H_out, W_out) and w.
template <class T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx, GradMode mode,
                          T* workspace);

// dw (C_out, C_in, K_h, K_w) and db (C_out, may be nullptr) from x and dy, summed over the batch.
// float: one partial sum per block of images (a number of blocks fixed by the batch), added in
// block order, so dw has the same bits whatever the thread count.
template <class T>
void conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* db,
                            GradMode mode, T* workspace);

// The float specialisations (kernels/cpu/conv2d_fast.cpp).
template <>
void conv2d_forward<float>(const Conv2dShape& s, const float* x, const float* w, const float* b,
                           float* y, float* workspace, bool relu);
template <>
void conv2d_backward_data<float>(const Conv2dShape& s, const float* dy, const float* w,
                                 float* dx, GradMode mode, float* workspace);
template <>
void conv2d_backward_filter<float>(const Conv2dShape& s, const float* x, const float* dy,
                                   float* dw, float* db, GradMode mode, float* workspace);

}  // namespace cpu

// The same three operations on device pointers, float only, asynchronous on `stream`
// (kernels/cuda/conv2d.cu): implicit GEMMs that gather input patches on the fly, so no im2col
// buffer. Deterministic: the same inputs give the same bits, run after run (no atomics; every
// sum has a fixed order). Tensors must hold fewer than 2^31 elements each.
namespace cuda {

// What the forward pass applies after conv + bias, in the same pass over y.
struct Conv2dEpilogue {
  bool relu = false;  // y = relu(conv(x, w) + b), ReLU written `v < 0 ? 0 : v` (NaN stays NaN)
};

// Block tiles of the forward / backward-data kernel: pixels (M) x channels (N). Auto picks by
// shape; the others exist so that tests can run every configuration and benchmarks compare
// them. Every choice gives bit-identical results (each output is one thread's FMA chain over
// the patch in a fixed order).
enum class Conv2dTiles { Auto, M128N64, M64N64, M128N32, M64N32 };

// Block tiles of the backward-filter kernel: output channels (M) x patch columns (N). Unlike
// Conv2dTiles, the choice changes the summation order over pixels, hence the last bits of dw.
enum class Conv2dFilterTiles { Auto, M32N16, M32N32, M32N64, M64N64 };

struct Conv2dTuning {
  Conv2dTiles tiles = Conv2dTiles::Auto;
  Conv2dFilterTiles filter_tiles = Conv2dFilterTiles::Auto;
  // Backward-filter splits its sum over N·H_out·W_out pixels into this many chunks (partial dw
  // in the workspace, then a fixed-order sum); 0 = chosen by shape. Clamped to [1, pixels/16].
  int64_t filter_chunks = 0;
  // FP32 (the default): the FMA kernels, bit-exact as always. TF32 / BF16: the same three
  // implicit GEMMs with the products on the tensor cores (nvcuda::wmma): x, w, dy (and the
  // gathered patches) are rounded to TF32 (nearest, ties away from zero, as __float_to_tf32)
  // or BF16 (nearest even) as they are staged, the sums accumulate in FP32, and every tensor
  // stays FP32 in memory; the bias, ReLU, accumulation into dx/dw/db and the chunk sums are the
  // FP32 path's (db sums the rounded dy). Every tile and chunk choice is supported in every
  // precision; the workspace does not depend on it. Deterministic run to run; the tensor cores'
  // internal summation order is the hardware's, so TF32/BF16 results match a CPU reference on
  // rounded operands to FP32 accumulation error, not to the bit. Compute capability 8.0+.
  MathPrecision precision = MathPrecision::FP32;
};

// Scratch floats the CUDA kernels need (backward-filter's per-chunk partial sums; forward and
// backward-data need none). Non-decreasing in s.n, so a workspace sized for the largest batch
// serves every smaller one.
int64_t conv2d_workspace_elements(const Conv2dShape& s);
int64_t conv2d_workspace_elements(const Conv2dShape& s, const Conv2dTuning& tuning);

// y = conv(x, w) + b (then ReLU if epilogue.relu). x (N, C_in, H, W); w (C_out, C_in, K_h, K_w);
// b (C_out) or nullptr; y (N, C_out, H_out, W_out) is overwritten, never read. workspace may be
// nullptr (forward needs none).
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b,
                    float* y, float* workspace, Stream stream);
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b,
                    float* y, float* workspace, Stream stream, const Conv2dEpilogue& epilogue,
                    const Conv2dTuning& tuning = {});

// dx (N, C_in, H, W) from dy (N, C_out, H_out, W_out) and w, per `mode` (Overwrite never reads
// dx). workspace may be nullptr (backward-data needs none).
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                          GradMode mode, float* workspace, Stream stream,
                          const Conv2dTuning& tuning = {});

// dw (C_out, C_in, K_h, K_w) and db (C_out, may be nullptr) from x and dy, summed over the
// batch, per `mode`. workspace: conv2d_workspace_elements(s, tuning) floats (nullptr if 0).
void conv2d_backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                            float* db, GradMode mode, float* workspace, Stream stream,
                            const Conv2dTuning& tuning = {});

}  // namespace cuda
}  // namespace polytask::kernels
