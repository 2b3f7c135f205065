// CUDA versions of the elementwise ops (kernels/elementwise.h). All are memory-bound: each
// element is touched once, so the kernels aim only at moving bytes at the copy rate — 16-byte
// float4 accesses where the arrays share an alignment, a grid-stride loop, 256 threads a block.
#include "kernels/cuda/grid_stride.h"
#include "kernels/cuda/launch.h"
#include "kernels/elementwise.h"

namespace polytask::kernels::cuda {

namespace {

using detail::global_thread;
using detail::grid_threads;
using detail::kFlatThreads;
using detail::VectorSplit;

// ---- per-element functions --------------------------------------------------------------------

struct Relu {  // `x < 0 ? 0 : x` keeps NaN as NaN, as the CPU reference does
  __device__ __forceinline__ float operator()(float x) const { return x < 0.0f ? 0.0f : x; }
};
struct ReluGrad {  // (y, dy): the gradient at y == 0 is 0
  __device__ __forceinline__ float operator()(float y, float dy) const {
    return y > 0.0f ? dy : 0.0f;
  }
};
struct Add {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct Scale {
  float scale;
  __device__ __forceinline__ float operator()(float x) const { return scale * x; }
};

template <bool kAccumulate>
__device__ __forceinline__ float store_value(const float* old, float value) {
  if constexpr (kAccumulate) return *old + value;
  return value;
}

__device__ __forceinline__ float4 load4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

// ---- kernels ------------------------------------------------------------------------------------

__global__ void __launch_bounds__(kFlatThreads)
    fill_kernel(VectorSplit split, float value, float* __restrict__ y) {
  for (int64_t q = global_thread(); q < split.quads; q += grid_threads())
    store4(y + split.head + 4 * q, make_float4(value, value, value, value));
  for (int64_t k = global_thread(); k < split.scalars; k += grid_threads())
    y[split.scalar_index(k)] = value;
}

// y = f(x), or y += f(x). x and y may alias (no __restrict__): each element is read, then
// written, by the same thread.
template <class F, bool kAccumulate>
__global__ void __launch_bounds__(kFlatThreads)
    map1_kernel(VectorSplit split, const float* x, float* y, F f) {
  for (int64_t q = global_thread(); q < split.quads; q += grid_threads()) {
    const int64_t i = split.head + 4 * q;
    const float4 a = load4(x + i);
    float4 out = make_float4(f(a.x), f(a.y), f(a.z), f(a.w));
    if constexpr (kAccumulate) {
      const float4 old = load4(y + i);
      out = make_float4(old.x + out.x, old.y + out.y, old.z + out.z, old.w + out.w);
    }
    store4(y + i, out);
  }
  for (int64_t k = global_thread(); k < split.scalars; k += grid_threads()) {
    const int64_t i = split.scalar_index(k);
    y[i] = store_value<kAccumulate>(y + i, f(x[i]));
  }
}

// y = f(a, b), or y += f(a, b).
template <class F, bool kAccumulate>
__global__ void __launch_bounds__(kFlatThreads)
    map2_kernel(VectorSplit split, const float* a, const float* b, float* y, F f) {
  for (int64_t q = global_thread(); q < split.quads; q += grid_threads()) {
    const int64_t i = split.head + 4 * q;
    const float4 u = load4(a + i), v = load4(b + i);
    float4 out = make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w));
    if constexpr (kAccumulate) {
      const float4 old = load4(y + i);
      out = make_float4(old.x + out.x, old.y + out.y, old.z + out.z, old.w + out.w);
    }
    store4(y + i, out);
  }
  for (int64_t k = global_thread(); k < split.scalars; k += grid_threads()) {
    const int64_t i = split.scalar_index(k);
    y[i] = store_value<kAccumulate>(y + i, f(a[i], b[i]));
  }
}

// The parts of a concat, passed by value in the kernel's parameters (no device-side array to
// allocate or copy). Part p fills columns [offset[p], offset[p] + inner[p]) of y's rows.
template <class Pointer>
struct ConcatParts {
  Pointer data[kMaxConcatParts];
  int64_t inner[kMaxConcatParts];
  int64_t offset[kMaxConcatParts];
};

// blockIdx.y picks the part; the x-blocks walk its (outer, inner) elements in order, so reads
// from the part are contiguous and writes into y contiguous within each row.
__global__ void __launch_bounds__(kFlatThreads)
    concat_forward_kernel(int64_t outer, int64_t total, ConcatParts<const float*> parts,
                          float* __restrict__ y) {
  const unsigned p = blockIdx.y;
  const float* __restrict__ src = parts.data[p];
  const int64_t inner = parts.inner[p], offset = parts.offset[p];
  for (int64_t k = global_thread(); k < outer * inner; k += grid_threads()) {
    const int64_t o = k / inner, c = k - o * inner;
    y[o * total + offset + c] = src[k];
  }
}

template <bool kAccumulate>
__global__ void __launch_bounds__(kFlatThreads)
    concat_backward_kernel(int64_t outer, int64_t total, const float* __restrict__ dy,
                           ConcatParts<float*> dparts) {
  const unsigned p = blockIdx.y;
  float* __restrict__ dst = dparts.data[p];
  if (dst == nullptr) return;  // this input needs no gradient
  const int64_t inner = dparts.inner[p], offset = dparts.offset[p];
  for (int64_t k = global_thread(); k < outer * inner; k += grid_threads()) {
    const int64_t o = k / inner, c = k - o * inner;
    dst[k] = store_value<kAccumulate>(dst + k, dy[o * total + offset + c]);
  }
}

struct WeightedParts {
  const float* x[kMaxWeightedSumParts];
  float coefficient[kMaxWeightedSumParts];
  const float* device_coefficients;  // when set, read instead of coefficient[]
  int count;
};

// The part loop is unrolled to the maximum with a guard, so every parameter access has a
// constant index (a variable index into kernel parameters spills them to local memory).
__global__ void __launch_bounds__(kFlatThreads)
    weighted_sum_kernel(int64_t count, WeightedParts parts, float* y) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    double sum = 0.0;
#pragma unroll
    for (int p = 0; p < kMaxWeightedSumParts; ++p)
      if (p < parts.count) {
        const float c = parts.device_coefficients ? parts.device_coefficients[p] : parts.coefficient[p];
        sum = fma(double(c), double(parts.x[p][i]), sum);
      }
    y[i] = float(sum);
  }
}

template <class F>
void map1(const char* op, int64_t count, const float* x, float* y, F f, GradMode mode,
          Stream stream) {
  if (count <= 0) return;
  const VectorSplit split = detail::split_for_float4(count, {x, y});
  const unsigned blocks = detail::flat_blocks(split);
  if (mode == GradMode::Accumulate)
    launch(op, map1_kernel<F, true>, blocks, kFlatThreads, 0, stream, split, x, y, f);
  else
    launch(op, map1_kernel<F, false>, blocks, kFlatThreads, 0, stream, split, x, y, f);
}

template <class F>
void map2(const char* op, int64_t count, const float* a, const float* b, float* y, F f,
          GradMode mode, Stream stream) {
  if (count <= 0) return;
  const VectorSplit split = detail::split_for_float4(count, {a, b, y});
  const unsigned blocks = detail::flat_blocks(split);
  if (mode == GradMode::Accumulate)
    launch(op, map2_kernel<F, true>, blocks, kFlatThreads, 0, stream, split, a, b, y, f);
  else
    launch(op, map2_kernel<F, false>, blocks, kFlatThreads, 0, stream, split, a, b, y, f);
}

template <class Pointer>
ConcatParts<Pointer> concat_parts(const char* op, int num_parts, const int64_t* part_inner,
                                  Pointer const* pointers, int64_t& total, int64_t& widest) {
  if (num_parts < 1 || num_parts > kMaxConcatParts)
    fail(op, ": ", num_parts, " parts; the CUDA kernel takes 1 to ", kMaxConcatParts);
  ConcatParts<Pointer> parts{};
  total = widest = 0;
  for (int p = 0; p < num_parts; ++p) {
    if (part_inner[p] < 0) fail(op, ": part ", p, " has negative size ", part_inner[p]);
    parts.data[p] = pointers[p];
    parts.inner[p] = part_inner[p];
    parts.offset[p] = total;
    total += part_inner[p];
    if (part_inner[p] > widest) widest = part_inner[p];
  }
  return parts;
}

}  // namespace

void fill(int64_t count, float value, float* y, Stream stream) {
  if (count <= 0) return;
  const VectorSplit split = detail::split_for_float4(count, {y});
  launch("fill", fill_kernel, detail::flat_blocks(split), kFlatThreads, 0, stream, split, value, y);
}

void copy(int64_t count, const float* x, float* y, Stream stream) {
  if (count <= 0 || x == y) return;
  POLYTASK_CUDA_CHECK(
      cudaMemcpyAsync(y, x, size_t(count) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
}

void relu_forward(int64_t count, const float* x, float* y, Stream stream) {
  map1("relu_forward", count, x, y, Relu{}, GradMode::Overwrite, stream);
}

void relu_backward(int64_t count, const float* y, const float* dy, float* dx, GradMode mode,
                   Stream stream) {
  map2("relu_backward", count, y, dy, dx, ReluGrad{}, mode, stream);
}

void add_forward(int64_t count, const float* a, const float* b, float* y, Stream stream) {
  map2("add_forward", count, a, b, y, Add{}, GradMode::Overwrite, stream);
}

void scale_grad(int64_t count, float scale, const float* dy, float* dx, GradMode mode,
                Stream stream) {
  map1("scale_grad", count, dy, dx, Scale{scale}, mode, stream);
}

void concat_forward(int64_t outer, int num_parts, const int64_t* part_inner,
                    const float* const* parts, float* y, Stream stream) {
  int64_t total = 0, widest = 0;
  const ConcatParts<const float*> args =
      concat_parts("concat_forward", num_parts, part_inner, parts, total, widest);
  if (outer <= 0 || widest == 0) return;
  const dim3 grid(blocks_for(outer * widest, kFlatThreads), unsigned(num_parts));
  launch("concat_forward", concat_forward_kernel, grid, kFlatThreads, 0, stream, outer, total, args,
         y);
}

void concat_backward(int64_t outer, int num_parts, const int64_t* part_inner, const float* dy,
                     float* const* dparts, GradMode mode, Stream stream) {
  int64_t total = 0, widest = 0;
  const ConcatParts<float*> args =
      concat_parts("concat_backward", num_parts, part_inner, dparts, total, widest);
  if (outer <= 0 || widest == 0) return;
  const dim3 grid(blocks_for(outer * widest, kFlatThreads), unsigned(num_parts));
  if (mode == GradMode::Accumulate)
    launch("concat_backward", concat_backward_kernel<true>, grid, kFlatThreads, 0, stream, outer,
           total, dy, args);
  else
    launch("concat_backward", concat_backward_kernel<false>, grid, kFlatThreads, 0, stream, outer,
           total, dy, args);
}

namespace {
void launch_weighted_sum(int64_t count, int parts, const float* const* xs,
                         const float* coefficients, const float* device_coefficients, float* y,
                         Stream stream) {
  if (parts < 0 || parts > kMaxWeightedSumParts)
    fail("weighted_sum: ", parts, " parts; the CUDA kernel takes 0 to ", kMaxWeightedSumParts);
  if (count <= 0) return;
  WeightedParts args{};
  args.count = parts;
  args.device_coefficients = device_coefficients;
  for (int p = 0; p < parts; ++p) {
    args.x[p] = xs[p];
    if (coefficients) args.coefficient[p] = coefficients[p];
  }
  launch("weighted_sum", weighted_sum_kernel, blocks_for(count, kFlatThreads), kFlatThreads, 0,
         stream, count, args, y);
}
}  // namespace

void weighted_sum(int64_t count, int parts, const float* const* xs, const float* coefficients,
                  float* y, Stream stream) {
  launch_weighted_sum(count, parts, xs, coefficients, nullptr, y, stream);
}

void weighted_sum_device_coefficients(int64_t count, int parts, const float* const* xs,
                                      const float* coefficients, float* y, Stream stream) {
  launch_weighted_sum(count, parts, xs, nullptr, coefficients, y, stream);
}

}  // namespace polytask::kernels::cuda
