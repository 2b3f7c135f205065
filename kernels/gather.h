// Batch assembly from a dataset held whole in memory: rows picked by an index list (a shuffled
// epoch order) copied into a batch buffer. On the GPU this is how a step gets its batch without
// a host-to-device copy; images travel as bytes and are normalised on the way (v / 255, the
// same division the IDX and CIFAR readers do on the host, so the floats are identical).
#pragma once

#include <cstdint>

#include "kernels/cuda/stream.h"

namespace polytask::kernels {

namespace cpu {

// dst row r (row_elements values) = src row indices[r], for r in [0, n).
template <class T>
void gather_rows(int64_t n, int64_t row_elements, const int32_t* indices, const T* src, T* dst);

// dst row r = float(src row indices[r]) / divisor, element by element.
void gather_rows_normalized(int64_t n, int64_t row_elements, const int32_t* indices,
                            const uint8_t* src, float divisor, float* dst);

}  // namespace cpu

namespace cuda {

// The same on device pointers, asynchronous on `stream` (kernels/cuda/gather.cu). T is float
// or int32_t.
template <class T>
void gather_rows(int64_t n, int64_t row_elements, const int32_t* indices, const T* src, T* dst,
                 Stream stream);
void gather_rows_normalized(int64_t n, int64_t row_elements, const int32_t* indices,
                            const uint8_t* src, float divisor, float* dst, Stream stream);

}  // namespace cuda
}  // namespace polytask::kernels
