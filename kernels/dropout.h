// Inverted dropout: in training each element is kept with probability 1 - rate and scaled by
// 1 / (1 - rate), so inference is the identity. The mask is a pure function of
// (seed, stream, element index) through Philox, so backward recomputes it instead of storing
// it, and the CUDA kernel reproduces the CPU mask bit for bit. The engine passes a stream that
// combines the layer call and the step, so every step draws a fresh mask, and a first index
// that places the tensor within the step's global batch (data-parallel training: a rank holding
// rows [r, r + n) passes r times the elements per row, and draws what one process would).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/grad_mode.h"
#include "kernels/philox.h"

namespace polytask::kernels {

// Whether an element whose uniform draw is `uniform` survives.
POLYTASK_HOST_DEVICE inline bool dropout_keeps(float uniform, float rate) { return uniform >= rate; }

POLYTASK_HOST_DEVICE inline bool dropout_keeps(uint64_t seed, uint64_t stream, uint64_t index,
                                               float rate) {
  return dropout_keeps(philox_uniform(seed, stream, index), rate);
}

namespace cpu {

// rate in [0, 1). Element i is kept when dropout_keeps(seed, stream, first_index + i, rate):
// first_index is the Philox index of element 0 (any value; the sum wraps modulo 2^64), so a
// draw of count elements from first_index k equals elements [k, k + count) of one draw from 0.
// y may alias x.
template <class T>
void dropout_forward(int64_t count, float rate, uint64_t seed, uint64_t stream,
                     uint64_t first_index, const T* x, T* y);

template <class T>
void dropout_backward(int64_t count, float rate, uint64_t seed, uint64_t stream,
                      uint64_t first_index, const T* dy, T* dx, GradMode mode);

}  // namespace cpu

namespace cuda {

// The device versions (kernels/cuda/dropout.cu), float only, asynchronous on `stream`; every
// pointer is device memory. `philox_stream` is the CPU reference's `stream` argument (the draw),
// renamed so it does not clash with the CUDA stream; first_index is the CPU's too. The mask is
// dropout_keeps(seed, philox_stream, first_index + i, rate), bit for bit the CPU's, and so are
// the values: the same one rounding of 1/(1 - rate), and in Accumulate the product rounded
// before the add (no fused multiply-add). rate outside [0, 1) or a negative count throws
// polytask::Error, as on the CPU. y may alias x.
//
// For CUDA graphs, which freeze kernel arguments at capture while the draw must change every
// step, philox_stream may instead name a device step counter: the draw is then
// (*step << shift) + call, read when the kernel runs — the engine's (step << 20) + layer call.
// first_index is a plain argument, frozen at capture like count and the pointers.
struct PhiloxStream {
  struct FromStep {
    const uint64_t* step = nullptr;
    unsigned shift = 0;
    uint64_t call = 0;
  };
  uint64_t value = 0;
  FromStep from_step;
  PhiloxStream(uint64_t v) : value(v) {}  // NOLINT(google-explicit-constructor): a plain draw
  PhiloxStream(const uint64_t* step, unsigned shift, uint64_t call) : from_step{step, shift, call} {}
};
void dropout_forward(int64_t count, float rate, uint64_t seed, PhiloxStream philox_stream,
                     uint64_t first_index, const float* x, float* y, Stream stream);
void dropout_backward(int64_t count, float rate, uint64_t seed, PhiloxStream philox_stream,
                      uint64_t first_index, const float* dy, float* dx, GradMode mode,
                      Stream stream);

}  // namespace cuda
}  // namespace polytask::kernels
