// cuDNN convolution for a Conv2dShape — the oracle in tests/cuda/test_conv2d.cpp and the
// baseline in bench/gpu/bench_gpu_conv.cpp, never used by the engine.
//
// Same layouts as ours: NCHW tensors, OIHW filters, cross-correlation, stride, zero padding.
// Arithmetic: by default FP32 on the FMA units only (CUDNN_FMA_MATH). cuDNN's
// CUDNN_DEFAULT_MATH permits TF32 tensor cores for float data on A100 and later, so it would not
// be like for like with our FP32 kernels; the algorithm search also discards any result reported
// under another math type. (NVIDIA_TF32_OVERRIDE=0 in the environment is a second guard — and
// turns the CudnnMath::TensorOp baseline of our TF32 kernels back into FP32, so benchmarks
// leave it unset.) CudnnMath::TensorOp asks for TF32 tensor cores instead (see below).
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
// benchmarks). Either way only algorithms of the chosen CudnnMath are taken.
enum class CudnnAlgoPick { Heuristic, Fastest };

// The arithmetic: Fma (the default, CUDNN_FMA_MATH: FP32 on the FMA units, like our FP32
// kernels), or TensorOp (CUDNN_TENSOR_OP_MATH: tensor cores allowed, which for FP32 tensors on
// Ampere and later means TF32 operands with FP32 accumulation, like Conv2dTuning::precision =
// TF32; cuDNN may still pick an FMA algorithm if it is faster, and the algorithm names then say
// which ran). No down-conversion to FP16/BF16 is allowed, so there is no BF16 counterpart.
enum class CudnnMath { Fma, TensorOp };

class CudnnConv2d {
 public:
  // Whether cuDNN's symmetric padding reproduces this shape exactly (see above).
  static bool supports(const Conv2dShape& s);

  // Throws polytask::Error for an unsupported shape or when no FMA algorithm exists. Allocates
  // the workspace of the chosen algorithms once, here.
  CudnnConv2d(const CudnnHandle& handle, const Conv2dShape& s,
              CudnnAlgoPick pick = CudnnAlgoPick::Heuristic, CudnnMath math = CudnnMath::Fma);
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
  // Whether the chosen algorithm runs with tensor-core math (only ever with CudnnMath::TensorOp).
  bool forward_on_tensor_cores() const { return forward_math_ != CUDNN_FMA_MATH; }
  bool backward_data_on_tensor_cores() const { return backward_data_math_ != CUDNN_FMA_MATH; }
  bool backward_filter_on_tensor_cores() const { return backward_filter_math_ != CUDNN_FMA_MATH; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  void choose_heuristic();
  void choose_fastest();
  void release();  // frees what the constructor acquired (idempotent)
  // Sets the descriptor to the math type `op`'s algorithm was chosen with (TensorOp only).
  void use_math(cudnnMathType_t math) const;

  cudnnHandle_t handle_ = nullptr;
  Conv2dShape shape_;
  TensorDescriptor x_desc_, y_desc_, bias_desc_;
  cudnnFilterDescriptor_t w_desc_ = nullptr;
  cudnnConvolutionDescriptor_t conv_desc_ = nullptr;
  cudnnActivationDescriptor_t relu_desc_ = nullptr;
  CudnnMath math_ = CudnnMath::Fma;
  cudnnConvolutionFwdAlgo_t forward_algo_{};
  cudnnConvolutionBwdDataAlgo_t backward_data_algo_{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter_algo_{};
  cudnnMathType_t forward_math_ = CUDNN_FMA_MATH, backward_data_math_ = CUDNN_FMA_MATH,
                  backward_filter_math_ = CUDNN_FMA_MATH;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace polytask::kernels::vendor
