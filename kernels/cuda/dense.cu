// Fully connected layer on the GPU: three SGEMM calls (kernels/cuda/gemm.cu), the forward's
// bias fused into the GEMM epilogue, and a deterministic column sum for the bias gradient.
#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/dense.h"
#include "kernels/gemm.h"

namespace polytask::kernels::cuda {

namespace {

constexpr int kSumColumns = 32;   // one warp spans 32 adjacent columns: coalesced row reads
constexpr int kSumRowGroups = 8;  // warps per block, each summing every 8th row

// db[j] (=|+=) sum_i dy[i][j]. A block owns 32 columns; warp g sums rows g, g + 8, g + 16, ...
// in order, then one thread per column adds the 8 partial sums in warp order. The order
// depends only on the shape, so the result is bit-identical run to run (no atomics). Sums run
// in double, as the CPU reference does, so float and double agree to float rounding; the
// column sum is memory-bound, so double arithmetic costs nothing measurable.
//
// Work: rows·cols adds; bytes: 4·rows·cols read + 4·cols written (8 with accumulate).
__global__ void __launch_bounds__(kSumColumns* kSumRowGroups)
    column_sums_kernel(const float* __restrict__ dy, int64_t rows, int64_t cols,
                       float* __restrict__ db, bool accumulate) {
  __shared__ double partial[kSumRowGroups][kSumColumns];
  const int lane = int(threadIdx.x) % kSumColumns;
  const int group = int(threadIdx.x) / kSumColumns;
  const int64_t col = int64_t(blockIdx.x) * kSumColumns + lane;

  double sum = 0.0;
  if (col < cols)
    for (int64_t row = group; row < rows; row += kSumRowGroups) sum += double(dy[row * cols + col]);
  partial[group][lane] = sum;
  __syncthreads();

  if (group != 0 || col >= cols) return;
  double total = 0.0;
#pragma unroll
  for (int g = 0; g < kSumRowGroups; ++g) total += partial[g][lane];
  db[col] = accumulate ? db[col] + float(total) : float(total);
}

float beta_for(GradMode mode) { return mode == GradMode::Accumulate ? 1.0f : 0.0f; }

}  // namespace

void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b, float* y,
                   Stream stream, MathPrecision precision) {
  // y = x · wᵀ (+ b): beta = 0, so y is never read and may hold anything.
  GemmOptions options;
  options.column_bias = b;
  options.precision = precision;
  gemm(Transpose::No, Transpose::Yes, s.n, s.out, s.in, 1.0f, x, s.in, w, s.in, 0.0f, y, s.out,
       stream, options);
}

void dense_backward_data(const DenseShape& s, const float* dy, const float* w, float* dx,
                         GradMode mode, Stream stream, MathPrecision precision) {
  GemmOptions options;
  options.precision = precision;
  gemm(Transpose::No, Transpose::No, s.n, s.in, s.out, 1.0f, dy, s.out, w, s.in, beta_for(mode), dx,
       s.in, stream, options);
}

void dense_backward_filter(const DenseShape& s, const float* x, const float* dy, float* dw,
                           float* db, GradMode mode, Stream stream, MathPrecision precision) {
  GemmOptions options;
  options.precision = precision;
  gemm(Transpose::Yes, Transpose::No, s.out, s.in, s.n, 1.0f, dy, s.out, x, s.in, beta_for(mode),
       dw, s.in, stream, options);
  if (db == nullptr || s.out == 0) return;
  launch("cuda::dense_backward_filter (bias column sums)", column_sums_kernel,
         dim3(blocks_for(s.out, kSumColumns, 0x7fffffffu)), dim3(kSumColumns * kSumRowGroups), 0,
         stream, dy, s.n, s.out, db, mode == GradMode::Accumulate);
}

}  // namespace polytask::kernels::cuda
