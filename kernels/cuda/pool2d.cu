// CUDA max pooling (kernels/pool2d.h). Both kernels are memory-bound, one thread per element:
//
//  - forward: a thread per output walks its window in the CPU's row-major order with the CPU's
//    comparison (strict '>', first NaN wins), so y and argmax are the CPU's bit for bit;
//  - backward: a gather. A thread per input visits, in output row-major order, the windows that
//    contain it — one at most when stride >= kernel, up to ceil(k/stride) per axis when windows
//    overlap — and adds the dy of each window whose argmax names it. Each dx element has one
//    writer (no atomics), and the additions run in the CPU's order from the CPU's start value,
//    so the sums are the CPU's bit for bit even when overlapping windows pick the same input.
//
// The workloads' 2x2 / stride-2 window is a compile-time specialisation (constant loop bounds,
// shifts instead of divisions); other windows take their sizes at run time. Flat indices are
// split with 32-bit divisions when the tensors have fewer than 2^32 elements (64-bit division is
// a long software sequence on the GPU).
#include "kernels/pool2d.h"

#include <cstdint>
#include <limits>

#include "kernels/cuda/grid_stride.h"
#include "kernels/cuda/launch.h"
#include "kernels/error.h"

namespace polytask::kernels::cuda {

namespace {

using detail::global_thread;
using detail::grid_threads;

constexpr unsigned kThreads = 256;

// The shape as the kernels read it: plane sizes fit int32 (checked on the host, as the CPU
// reference does for its int32 argmax), counts may not.
struct PoolGeometry {
  int h_in, w_in, h_out, w_out;
  int k_h, k_w, stride_h, stride_w;
  int64_t in_count, out_count;  // N·C·H_in·W_in and N·C·H_out·W_out
};

// Window sizes: the template constants when non-zero, else the run-time values.
template <int kKernel, int kStride>
struct Window {
  int k_h, k_w, stride_h, stride_w;
  __device__ __forceinline__ explicit Window(const PoolGeometry& g)
      : k_h(kKernel ? kKernel : g.k_h),
        k_w(kKernel ? kKernel : g.k_w),
        stride_h(kStride ? kStride : g.stride_h),
        stride_w(kStride ? kStride : g.stride_w) {}
};

// One thread per output (plane, oh, ow). The first element seeds the maximum; revisiting it in
// the loop changes nothing (v > v is false, and a NaN does not replace a NaN), exactly as in the
// CPU's generic loop, whose order and comparisons this repeats.
template <int kKernel, int kStride, class Index>
__global__ void __launch_bounds__(kThreads)
    max_pool_forward_kernel(PoolGeometry g, const float* __restrict__ x, float* __restrict__ y,
                            int32_t* __restrict__ argmax) {
  const Window<kKernel, kStride> win(g);
  const Index out_plane = Index(g.h_out) * Index(g.w_out);
  const Index in_plane = Index(g.h_in) * Index(g.w_in);
  for (int64_t o = global_thread(); o < g.out_count; o += grid_threads()) {
    const Index flat = Index(o);
    const Index plane = flat / out_plane;
    const Index rest = flat - plane * out_plane;
    const Index oh = rest / Index(g.w_out);
    const Index ow = rest - oh * Index(g.w_out);
    const int corner = int(oh) * win.stride_h * g.w_in + int(ow) * win.stride_w;
    const float* __restrict__ xp = x + plane * in_plane;
    float best = xp[corner];
    int best_index = corner;
    for (int i = 0; i < win.k_h; ++i) {
      for (int j = 0; j < win.k_w; ++j) {
        const int index = corner + i * g.w_in + j;
        const float v = xp[index];
        if (v > best || (v != v && best == best)) {
          best = v;
          best_index = index;
        }
      }
    }
    y[o] = best;
    argmax[o] = best_index;
  }
}

// The windows along one axis that contain input position p: [first, last] (empty when first >
// last). Window o covers [o·stride, o·stride + k).
struct WindowRange {
  int first, last;
};
__device__ __forceinline__ WindowRange windows_containing(int p, int k, int stride, int count) {
  const int first = p < k ? 0 : (p - k) / stride + 1;
  const int last_fit = p / stride;
  return {first, last_fit < count - 1 ? last_fit : count - 1};
}

// One thread per input (plane, ih, iw): the gather described at the top of the file.
template <int kKernel, int kStride, bool kAccumulate, class Index>
__global__ void __launch_bounds__(kThreads)
    max_pool_backward_kernel(PoolGeometry g, const float* __restrict__ dy,
                             const int32_t* __restrict__ argmax, float* __restrict__ dx,
                             const float* __restrict__ relu_y) {
  const Window<kKernel, kStride> win(g);
  const Index out_plane = Index(g.h_out) * Index(g.w_out);
  const Index in_plane = Index(g.h_in) * Index(g.w_in);
  for (int64_t e = global_thread(); e < g.in_count; e += grid_threads()) {
    const Index flat = Index(e);
    const Index plane = flat / in_plane;
    const int rest = int(flat - plane * in_plane);
    const int ih = rest / g.w_in;
    const int iw = rest - ih * g.w_in;
    const WindowRange rows = windows_containing(ih, win.k_h, win.stride_h, g.h_out);
    const WindowRange cols = windows_containing(iw, win.k_w, win.stride_w, g.w_out);
    const int32_t* __restrict__ ap = argmax + plane * out_plane;
    const float* __restrict__ dyp = dy + plane * out_plane;
    // The fused ReLU backward (relu_y, the same for every thread: no divergence): a window's dy
    // passes only where its maximum, the ReLU's output at the chosen input, is positive.
    const float* __restrict__ yp = relu_y ? relu_y + plane * out_plane : nullptr;
    float sum = kAccumulate ? dx[e] : 0.0f;
    for (int oh = rows.first; oh <= rows.last; ++oh)
      for (int ow = cols.first; ow <= cols.last; ++ow) {
        // Both loads unconditionally, so they are in flight together (a dy load that waited for
        // its argmax's comparison would double the latency per window).
        const int o = oh * g.w_out + ow;
        const int32_t chosen = ap[o];
        const float grad = dyp[o];
        const bool open = !yp || yp[o] > 0.0f;
        if (chosen == rest && open) sum += grad;
      }
    dx[e] = sum;
  }
}

// Whether every flat index fits 32 bits (the kernels then split indices with 32-bit division).
bool fits_32_bits(const PoolGeometry& g) {
  constexpr int64_t kMax = int64_t(std::numeric_limits<uint32_t>::max());
  return g.in_count <= kMax && g.out_count <= kMax;
}

PoolGeometry geometry(const char* op, const MaxPool2dShape& s) {
  if (s.n < 0 || s.c < 0 || s.h_in < 0 || s.w_in < 0 || s.k_h < 1 || s.k_w < 1 ||
      s.stride_h < 1 || s.stride_w < 1 || s.h_out < 0 || s.w_out < 0)
    fail(op, ": invalid shape");
  if (s.h_in * s.w_in > std::numeric_limits<int32_t>::max())
    fail(op, ": a ", s.h_in, "x", s.w_in, " plane is too large for int32 argmax indices");
  if ((s.h_out > 0 && (s.h_out - 1) * s.stride_h + s.k_h > s.h_in) ||
      (s.w_out > 0 && (s.w_out - 1) * s.stride_w + s.k_w > s.w_in))
    fail(op, ": the output ", s.h_out, "x", s.w_out, " does not fit the input ", s.h_in, "x",
         s.w_in);
  PoolGeometry g{};
  g.h_in = int(s.h_in);
  g.w_in = int(s.w_in);
  g.h_out = int(s.h_out);
  g.w_out = int(s.w_out);
  g.k_h = int(s.k_h);
  g.k_w = int(s.k_w);
  g.stride_h = int(s.stride_h);
  g.stride_w = int(s.stride_w);
  g.in_count = s.n * s.c * s.h_in * s.w_in;
  g.out_count = s.n * s.c * s.h_out * s.w_out;
  return g;
}

bool is_2x2_stride_2(const PoolGeometry& g) {
  return g.k_h == 2 && g.k_w == 2 && g.stride_h == 2 && g.stride_w == 2;
}

template <int kKernel, int kStride>
void forward_with(const PoolGeometry& g, const float* x, float* y, int32_t* argmax,
                  Stream stream) {
  const unsigned blocks = blocks_for(g.out_count, kThreads);
  if (fits_32_bits(g))
    launch("max_pool2d_forward", max_pool_forward_kernel<kKernel, kStride, uint32_t>, blocks,
           kThreads, 0, stream, g, x, y, argmax);
  else
    launch("max_pool2d_forward", max_pool_forward_kernel<kKernel, kStride, uint64_t>, blocks,
           kThreads, 0, stream, g, x, y, argmax);
}

template <int kKernel, int kStride, bool kAccumulate>
void backward_with(const PoolGeometry& g, const float* dy, const int32_t* argmax, float* dx,
                   const float* relu_y, Stream stream) {
  const unsigned blocks = blocks_for(g.in_count, kThreads);
  if (fits_32_bits(g))
    launch("max_pool2d_backward", max_pool_backward_kernel<kKernel, kStride, kAccumulate, uint32_t>,
           blocks, kThreads, 0, stream, g, dy, argmax, dx, relu_y);
  else
    launch("max_pool2d_backward", max_pool_backward_kernel<kKernel, kStride, kAccumulate, uint64_t>,
           blocks, kThreads, 0, stream, g, dy, argmax, dx, relu_y);
}

}  // namespace

void max_pool2d_forward(const MaxPool2dShape& s, const float* x, float* y, int32_t* argmax,
                        Stream stream) {
  const PoolGeometry g = geometry("max_pool2d_forward", s);
  if (g.out_count == 0) return;
  if (is_2x2_stride_2(g))
    forward_with<2, 2>(g, x, y, argmax, stream);
  else
    forward_with<0, 0>(g, x, y, argmax, stream);
}

void max_pool2d_backward(const MaxPool2dShape& s, const float* dy, const int32_t* argmax,
                         float* dx, GradMode mode, Stream stream, const float* relu_y) {
  const PoolGeometry g = geometry("max_pool2d_backward", s);
  if (g.in_count == 0) return;
  const bool accumulate = mode == GradMode::Accumulate;
  if (is_2x2_stride_2(g)) {
    if (accumulate)
      backward_with<2, 2, true>(g, dy, argmax, dx, relu_y, stream);
    else
      backward_with<2, 2, false>(g, dy, argmax, dx, relu_y, stream);
  } else {
    if (accumulate)
      backward_with<0, 0, true>(g, dy, argmax, dx, relu_y, stream);
    else
      backward_with<0, 0, false>(g, dy, argmax, dx, relu_y, stream);
  }
}

}  // namespace polytask::kernels::cuda
