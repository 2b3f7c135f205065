// Parameter updates over flat arrays (the engine keeps all parameters of a model, their
// gradients and the optimiser state in one buffer each, so one call updates everything).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace polytask::kernels {

struct AdamParams {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-7f;          // Keras' default (PyTorch uses 1e-8)
  float weight_decay = 0.0f;  // decoupled (AdamW) when > 0
  int64_t step = 1;           // 1-based step count for bias correction
};

struct SgdParams {
  float lr = 1e-2f;
  float momentum = 0.0f;
  bool nesterov = false;
  float weight_decay = 0.0f;  // L2 added to the gradient, as torch.optim.SGD does
};

namespace cpu {

// m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²;
// p -= lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps)   [+ lr · wd · p when decoupled decay]
// This is PyTorch's formula (eps added after bias-correcting v); Keras adds epŝ to the
// uncorrected sqrt, which differs only in where eps enters.
template <class T>
void adam_update(int64_t count, const AdamParams& p, T* param, const T* grad, T* m, T* v);

// g' = g + wd·p;  buf = momentum·buf + g';  p -= lr · (nesterov ? g' + momentum·buf : buf).
// With momentum 0 this is plain SGD (buf is still written).
template <class T>
void sgd_update(int64_t count, const SgdParams& p, T* param, const T* grad, T* velocity);

}  // namespace cpu

namespace cuda {

// The device versions (kernels/cuda/optimizer.cu), float only, asynchronous on `stream`, one
// launch each over the flat device arrays; the same formulas as cpu::, with the bias
// corrections computed on the host in double from p.step. float4 accesses where the arrays share
// an alignment (any offset, as long as it is the same for all), scalar otherwise; the results
// are the same bits either way. They match the CPU reference within an ulp or two per step (nvcc
// fuses multiply-adds the CPU build rounds separately). adam_update throws polytask::Error for
// p.step < 1, as cpu:: does.
//
// `staged`: for CUDA graphs, which freeze kernel arguments at capture, the step's constants
// (learning rate, bias corrections) in device memory, written before each replay from
// adam_step_constants / sgd_step_constants and read when the kernel runs; nullptr computes them
// from p now. Either way the same floats.
struct AdamStepConstants {
  float step_size;             // lr / (1 - β1^t)
  float inv_sqrt_correction2;  // 1 / sqrt(1 - β2^t)
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  float decay;  // 1 - lr·wd (decoupled weight decay; 1 without)
};
struct SgdStepConstants {
  float lr, momentum, weight_decay;
};
AdamStepConstants adam_step_constants(const AdamParams& p);
SgdStepConstants sgd_step_constants(const SgdParams& p);

void adam_update(int64_t count, const AdamParams& p, float* param, const float* grad, float* m,
                 float* v, Stream stream, const AdamStepConstants* staged = nullptr);
void sgd_update(int64_t count, const SgdParams& p, float* param, const float* grad,
                float* velocity, Stream stream, const SgdStepConstants* staged = nullptr);

}  // namespace cuda
}  // namespace polytask::kernels
