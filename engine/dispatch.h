// Picks the kernel instantiation for a tensor's device and dtype. Ops without a CUDA kernel
// fail with a message naming the op rather than silently copying to the CPU inside a step.
#pragma once

#include "engine/tensor.h"
#include "kernels/error.h"

namespace polytask {

// f.template operator()<T>() with T = float or double, for CPU tensors.
template <class F>
void dispatch_cpu_float(const char* op, const Tensor& t, F&& f) {
  if (t.device() != Device::CPU)
    fail(op, ": has no CUDA kernel in this build yet; run with --device cpu");
  switch (t.dtype()) {
    case DType::F32: f.template operator()<float>(); return;
    case DType::F64: f.template operator()<double>(); return;
    case DType::I32: break;
  }
  fail(op, ": needs a floating-point tensor, got ", t.describe());
}

}  // namespace polytask
