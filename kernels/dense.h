// Fully connected layer: y = x · wᵀ + b with w stored (out_features, in_features), as
// torch.nn.Linear stores it. The three GEMM layouts here (A·Bᵀ forward, A·B backward-data,
// Aᵀ·B backward-filter) are the ones the CUDA SGEMM must provide.
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"
#include "kernels/precision.h"

namespace polytask::kernels {

struct DenseShape {
  int64_t n = 0;    // rows (batch)
  int64_t in = 0;   // input features
  int64_t out = 0;  // output features
};

namespace cpu {

// x (n, in), w (out, in), b (out) or nullptr; y (n, out) overwritten.
template <class T>
void dense_forward(const DenseShape& s, const T* x, const T* w, const T* b, T* y);

// dx (n, in) = dy · w.
template <class T>
void dense_backward_data(const DenseShape& s, const T* dy, const T* w, T* dx, GradMode mode);

// dw (out, in) = dyᵀ · x; db (out) = column sums of dy (may be nullptr).
template <class T>
void dense_backward_filter(const DenseShape& s, const T* x, const T* dy, T* dw, T* db,
                           GradMode mode);

}  // namespace cpu

// The same three operations on device pointers, float only, asynchronous on `stream`
// (kernels/cuda/dense.cu). Deterministic: bit-identical results for the same inputs.
//
// `precision` is the GEMM's (GemmOptions::precision): FP32 (the default) on the FMA units, or
// the tensor cores with operands rounded to TF32 / BF16 and FP32 accumulation. Tensors stay
// FP32 in memory either way; the bias add and the bias gradient's column sums are FP32 (db in
// double) whatever the precision — only the products of the three GEMMs are affected.
namespace cuda {

// x (n, in), w (out, in), b (out) or nullptr; y (n, out) overwritten. The bias is added in
// the GEMM's epilogue.
void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b, float* y,
                   Stream stream, MathPrecision precision = MathPrecision::FP32);

// dx (n, in) = dy · w, overwritten or accumulated per `mode`.
void dense_backward_data(const DenseShape& s, const float* dy, const float* w, float* dx,
                         GradMode mode, Stream stream,
                         MathPrecision precision = MathPrecision::FP32);

// dw (out, in) = dyᵀ · x; db (out) = column sums of dy (may be nullptr); both per `mode`.
void dense_backward_filter(const DenseShape& s, const float* x, const float* dy, float* dw,
                           float* db, GradMode mode, Stream stream,
                           MathPrecision precision = MathPrecision::FP32);

}  // namespace cuda
}  // namespace polytask::kernels
