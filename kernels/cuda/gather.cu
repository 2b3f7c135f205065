// Batch gathers: memory-bound copies (row_elements·n reads and writes); a 2-D grid, rows on y and
// the row's elements on x, so each warp reads a contiguous stretch of one source row.
#include "kernels/cuda/grid_stride.h"
#include "kernels/gather.h"

namespace polytask::kernels::cuda {

namespace {

constexpr unsigned kThreads = 256;

template <class T>
__global__ void gather_kernel(int64_t n, int64_t row_elements, const int32_t* __restrict__ indices,
                              const T* __restrict__ src, T* __restrict__ dst) {
  for (int64_t r = blockIdx.y; r < n; r += gridDim.y) {
    const T* from = src + int64_t(indices[r]) * row_elements;
    T* to = dst + r * row_elements;
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < row_elements;
         e += int64_t(gridDim.x) * blockDim.x)
      to[e] = from[e];
  }
}

__global__ void gather_normalized_kernel(int64_t n, int64_t row_elements,
                                         const int32_t* __restrict__ indices,
                                         const uint8_t* __restrict__ src, float divisor,
                                         float* __restrict__ dst) {
  for (int64_t r = blockIdx.y; r < n; r += gridDim.y) {
    const uint8_t* from = src + int64_t(indices[r]) * row_elements;
    float* to = dst + r * row_elements;
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < row_elements;
         e += int64_t(gridDim.x) * blockDim.x)
      to[e] = float(from[e]) / divisor;  // IEEE division, as on the host: identical floats
  }
}

dim3 gather_grid(int64_t n, int64_t row_elements) {
  const unsigned x = blocks_for(row_elements, kThreads, 64);
  const unsigned y = unsigned(n < 65535 ? n : 65535);
  return dim3(x, y);
}

}  // namespace

template <class T>
void gather_rows(int64_t n, int64_t row_elements, const int32_t* indices, const T* src, T* dst,
                 Stream stream) {
  if (n <= 0 || row_elements <= 0) return;
  launch("gather rows", gather_kernel<T>, gather_grid(n, row_elements), dim3(kThreads), 0, stream,
         n, row_elements, indices, src, dst);
}

void gather_rows_normalized(int64_t n, int64_t row_elements, const int32_t* indices,
                            const uint8_t* src, float divisor, float* dst, Stream stream) {
  if (n <= 0 || row_elements <= 0) return;
  launch("gather rows (normalised bytes)", gather_normalized_kernel, gather_grid(n, row_elements),
         dim3(kThreads), 0, stream, n, row_elements, indices, src, divisor, dst);
}

template void gather_rows<float>(int64_t, int64_t, const int32_t*, const float*, float*, Stream);
template void gather_rows<int32_t>(int64_t, int64_t, const int32_t*, const int32_t*, int32_t*,
                                   Stream);

}  // namespace polytask::kernels::cuda
