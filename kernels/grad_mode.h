// How a backward kernel writes a gradient buffer.
//
// Forward kernels always overwrite their outputs. Backward kernels either overwrite or
// accumulate into the gradient they produce: the engine's plan picks Overwrite for the first
// writer of a buffer in a step and Accumulate for every later one, so a tensor that feeds
// several consumers (the shared trunk at the fan-out, a residual skip, a layer called twice)
// receives the sum of its consumers' gradients without a separate zeroing pass.
#pragma once

namespace polytask::kernels {

enum class GradMode { Overwrite, Accumulate };

template <class T>
inline void store_grad(GradMode mode, T& dst, T value) {
  dst = (mode == GradMode::Accumulate) ? dst + value : value;
}

}  // namespace polytask::kernels
