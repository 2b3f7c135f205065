// The deterministic dot product of kernels/reduce.h: a grid-stride first pass (each thread sums
// its elements in index order, then the block tree) and the shared one-block second pass.
#include "kernels/cuda/block_reduce.h"
#include "kernels/cuda/grid_stride.h"
#include "kernels/reduce.h"

namespace polytask::kernels::cuda {

namespace {

constexpr int kDotThreads = 256;
// A block takes at least this many elements, so small vectors use few blocks (a 65k-element
// gradient: 16) and a single-block first pass finishes without a second launch.
constexpr int64_t kDotMinPerBlock = 16 * kDotThreads;

struct DotFinish {
  static constexpr bool kTracksMinimum = false;
  double* result;
  __device__ void operator()(double sum, double) const { *result = sum; }
};

// float·float is exact in double (24 + 24 significant bits < 53): only the additions round.
struct Product {
  __device__ __forceinline__ double operator()(float x, float y) const {
    return double(x) * double(y);
  }
};

__global__ void __launch_bounds__(kDotThreads)
    dot_kernel(int64_t count, const float* __restrict__ a, const float* __restrict__ b,
               double* __restrict__ partials, DotFinish finish) {
  __shared__ double scratch[kDotThreads / 32];
  double sum = detail::grid_stride_sum(count, a, b, Product{});
  sum = detail::block_allreduce<kDotThreads>(sum, detail::SumOp{}, scratch);
  detail::end_first_pass(sum, detail::kNoMinimum, partials, finish);
}

}  // namespace

void dot(int64_t count, const float* a, const float* b, double* result, double* partials,
         Stream stream) {
  if (count < 0) count = 0;
  const DotFinish finish{result};
  const unsigned blocks = detail::reduce_blocks(count, kDotMinPerBlock);
  launch("dot", dot_kernel, blocks, kDotThreads, 0, stream, count, a, b, partials, finish);
  detail::finish_reduction("dot", blocks, partials, finish, stream);
}

}  // namespace polytask::kernels::cuda
