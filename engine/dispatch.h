// Picks the kernel for a tensor's device and dtype: the CPU reference (float or double) or the
// handwritten CUDA kernel (float) on the engine's stream. There is no silent fallback: a tensor
// the CUDA kernels cannot take fails with a message naming the op.
#pragma once

#include "engine/tensor.h"
#include "kernels/cuda/stream.h"
#include "kernels/error.h"

namespace polytask {

namespace detail {
template <class F>
void dispatch_cpu(const char* op, const Tensor& t, F& f) {
  switch (t.dtype()) {
    case DType::F32: f.template operator()<float>(); return;
    case DType::F64: f.template operator()<double>(); return;
    case DType::I32:
    case DType::U8: break;
  }
  fail(op, ": needs a floating-point tensor, got ", t.describe());
}
}  // namespace detail

// cpu.template operator()<T>() with T = float or double for CPU tensors; cuda(stream) for f32
// CUDA tensors. `cuda` is a generic lambda ([&](auto stream) {...}) so that a build without
// CUDA never instantiates it and needs no CUDA kernels to link.
template <class Cpu, class Cuda>
void dispatch(const char* op, const Tensor& t, Cpu&& cpu, Cuda&& cuda) {
  if (t.device() == Device::CPU) return detail::dispatch_cpu(op, t, cpu);
#if defined(POLYTASK_WITH_CUDA)
  if (t.dtype() != DType::F32)
    fail(op, ": the CUDA kernels compute in f32, got ", t.describe(),
         " (f64 runs on the CPU reference only)");
  cuda(cuda_stream());
#else
  (void)cuda;
  fail(op, ": ", t.describe(), " needs CUDA, which this build lacks");
#endif
}

}  // namespace polytask
