// cuDNN convolution for a Conv2dShape — the oracle in tests/cuda/test_conv2d.cpp and the
// baseline in bench/gpu/bench_gpu_conv.cpp, never used by the engine.
//
// Same layouts as ours: NCHW tensors, OIHW filters, cross-correlation, stride, zero padding.
// Arithmetic: FP32 on the FMA units only (CUDNN_FMA_MATH). cuDNN's CUDNN_DEFAULT_MATH permits
// TF32 tensor cores for float data on A100 and later, so it would not be like for like with
// our FP32 kernels; the algorithm search also discards any result reported under another math
// type. (NVIDIA_TF32_OVERRIDE=0 in the environment is a second guard.)
//
// Padding: cuDNN pads symmetrically, Keras's 'same' puts the odd padding row/column at the
// bottom/right. Only shapes where cuDNN with pads (pad_top, pad_left) yields exactly
// (h_out, w_out) are supported — then both compute the same windows, as every tap beyond the
// input reads zero in both — which covers 'valid', odd kernels at stride 1, and the stride-2
// cases whose total padding is even. Asymmetric cases (even kernels; stride 2 on even inputs
// with 'same') are refused (supports() is false): tests and benchmarks skip them, saying so.
//
// Built with the legacy (v7-style) API, which cuDNN 9 still ships but marks deprecated.
#pragma once

#include <cstddef>

#include "kernels/conv2d.h"
#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"
#include "kernels/vendor/cudnn.h"

namespace polytask::kernels::vendor {

// How the algorithms are chosen: cuDNN's heuristics (cheap; tests), or the fastest of every
// algorithm, each timed by cuDNN on scratch tensors of this shape (cudnnFind*AlgorithmEx;
// benchmarks). Either way only FMA-math algorithms are taken.
enum class CudnnAlgoPick { Heuristic, Fastest };

class CudnnConv2d {
 public:
  // Whether cuDNN's symmetric padding reproduces this shape exactly (see above).
  static bool supports(const Conv2dShape& s);

  // Throws polytask::Error for an unsupported shape or when no FMA algorithm exists. Allocates
  // the workspace of the chosen algorithms once, here.
  CudnnConv2d(const CudnnHandle& handle, const Conv2dShape& s,
              CudnnAlgoPick pick = CudnnAlgoPick::Heuristic);
  ~CudnnConv2d();
  CudnnConv2d(const CudnnConv2d&) = delete;
  CudnnConv2d& operator=(const CudnnConv2d&) = delete;

  // y = conv(x, w), then y += b (cudnnAddTensor) when b != nullptr, then y = ReLU(y)
  // (cudnnActivationForward, in place) when relu: one, two or three cuDNN calls.
  void forward(const float* x, const float* w, const float* b, float* y, bool relu,
               cuda::Stream stream) const;
  // dx = (or +=) the gradient of x; Overwrite passes beta = 0.
  void backward_data(const float* dy, const float* w, float* dx, GradMode mode,
                     cuda::Stream stream) const;
  // dw = (or +=) the gradient of w; db likewise via cudnnConvolutionBackwardBias unless nullptr.
  void backward_filter(const float* x, const float* dy, float* dw, float* db, GradMode mode,
                       cuda::Stream stream) const;

  // The chosen algorithms' names, e.g. "IMPLICIT_PRECOMP_GEMM", for reports.
  const char* forward_algorithm() const;
  const char* backward_data_algorithm() const;
  const char* backward_filter_algorithm() const;
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  void choose_heuristic();
  void choose_fastest();
  void release();  // frees what the constructor acquired (idempotent)

  cudnnHandle_t handle_ = nullptr;
  Conv2dShape shape_;
  TensorDescriptor x_desc_, y_desc_, bias_desc_;
  cudnnFilterDescriptor_t w_desc_ = nullptr;
  cudnnConvolutionDescriptor_t conv_desc_ = nullptr;
  cudnnActivationDescriptor_t relu_desc_ = nullptr;
  cudnnConvolutionFwdAlgo_t forward_algo_{};
  cudnnConvolutionBwdDataAlgo_t backward_data_algo_{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter_algo_{};
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace polytask::kernels::vendor
