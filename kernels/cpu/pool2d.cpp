// CPU max pooling. Each (n, c) plane is independent, so OpenMP splits the planes: no two
// threads touch the same dx element even when windows overlap (stride < kernel), and the
// overlapping contributions are summed in a fixed order. Any window and stride runs the loops
// below, one output at a time; the workloads' float 2x2 / stride-2 window runs a vector of
// outputs at a time on the instruction set's micro-kernels (kernels/cpu/pool_rows.h, the same
// comparison rule and the same sums).
#include "kernels/pool2d.h"

#include <algorithm>
#include <limits>
#include <type_traits>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/sgemm.h"
#include "kernels/error.h"

namespace polytask::kernels::cpu {

namespace {

// The one comparison rule (pool_rows.h's pool_keep_max is its vector twin): v replaces best
// when it is larger (strict '>', so the first of equal maxima stays) or when it is the first
// NaN (no comparison with a NaN best is true afterwards, so the first NaN stays).
template <class T>
inline void keep_max(T v, int32_t index, T& best, int32_t& best_index) {
  if (!(v <= best) && best == best) {  // "v > best, or v is NaN", and best is not NaN
    best = v;
    best_index = index;
  }
}

bool is_2x2_stride_2(const MaxPool2dShape& s) {
  return s.k_h == 2 && s.k_w == 2 && s.stride_h == 2 && s.stride_w == 2;
}

// Whether the micro-kernels take the shape: float, 2x2 / stride 2, and rows of at least
// `min_outputs` outputs. The forward gains from 4 (pool2's 5-output rows: 0.35 -> 0.26 ms at
// the workload's batch); the backward only from 8: below it, writing each window whole costs
// more than zeroing the plane and adding 5 values a row (pool2: 0.17 vs 0.30 ms).
template <class T>
bool has_2x2_path(const MaxPool2dShape& s, int64_t min_outputs) {
  return std::is_same_v<T, float> && is_2x2_stride_2(s) && s.w_out >= min_outputs;
}

// Any window and stride: every window in row-major order under keep_max.
template <class T>
void max_pool_plane(const MaxPool2dShape& s, const T* xp, T* yp, int32_t* ap) {
  for (int64_t oh = 0; oh < s.h_out; ++oh) {
    for (int64_t ow = 0; ow < s.w_out; ++ow) {
      const int64_t corner = oh * s.stride_h * s.w_in + ow * s.stride_w;
      int32_t best_index = static_cast<int32_t>(corner);
      T best = xp[corner];
      for (int64_t i = 0; i < s.k_h; ++i)
        for (int64_t j = 0; j < s.k_w; ++j) {
          const int64_t index = corner + i * s.w_in + j;
          keep_max(xp[index], static_cast<int32_t>(index), best, best_index);
        }
      yp[oh * s.w_out + ow] = best;
      ap[oh * s.w_out + ow] = best_index;
    }
  }
}

}  // namespace

template <class T>
void max_pool2d_forward(const MaxPool2dShape& s, const T* x, T* y, int32_t* argmax) {
  const int64_t in_plane = s.h_in * s.w_in, out_plane = s.h_out * s.w_out, planes = s.n * s.c;
  if (in_plane > std::numeric_limits<int32_t>::max())
    fail("max_pool2d: a ", s.h_in, "x", s.w_in, " plane is too large for int32 argmax indices");
  const int threads = parallel_threads(planes * out_plane * s.k_h * s.k_w);
  if constexpr (std::is_same_v<T, float>) {
    if (has_2x2_path<T>(s, 4)) {
      const auto vector_plane = active_micro_kernels().max_pool_2x2_forward;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
      for (int64_t p = 0; p < planes; ++p)
        vector_plane(s.h_out, s.w_out, s.w_in, x + p * in_plane, y + p * out_plane,
                     argmax + p * out_plane);
      return;
    }
  }
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t p = 0; p < planes; ++p)
    max_pool_plane(s, x + p * in_plane, y + p * out_plane, argmax + p * out_plane);
}

template <class T>
void max_pool2d_backward(const MaxPool2dShape& s, const T* dy, const int32_t* argmax, T* dx,
                         GradMode mode, const T* relu_y) {
  const int64_t in_plane = s.h_in * s.w_in, out_plane = s.h_out * s.w_out, planes = s.n * s.c;
  const int threads = parallel_threads(planes * in_plane);
  if constexpr (std::is_same_v<T, float>) {
    if (has_2x2_path<T>(s, 8)) {
      const auto vector_plane = active_micro_kernels().max_pool_2x2_backward;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
      for (int64_t p = 0; p < planes; ++p)
        vector_plane(s.h_in, s.w_in, s.h_out, s.w_out, dy + p * out_plane,
                     argmax + p * out_plane, relu_y ? relu_y + p * out_plane : nullptr,
                     dx + p * in_plane, mode == GradMode::Accumulate);
      return;
    }
  }
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t p = 0; p < planes; ++p) {
    T* dxp = dx + p * in_plane;
    const T* dyp = dy + p * out_plane;
    const int32_t* ap = argmax + p * out_plane;
    // Zeroing first, then adding, handles both unchosen pixels and overlapping windows that
    // pick the same pixel.
    if (mode == GradMode::Overwrite) std::fill_n(dxp, in_plane, T(0));
    if (relu_y) {
      // The ReLU backward's select (relu_backward), on the pooled outputs only.
      const T* yp = relu_y + p * out_plane;
      for (int64_t o = 0; o < out_plane; ++o) dxp[ap[o]] += yp[o] > T(0) ? dyp[o] : T(0);
    } else {
      for (int64_t o = 0; o < out_plane; ++o) dxp[ap[o]] += dyp[o];
    }
  }
}

template void max_pool2d_forward<float>(const MaxPool2dShape&, const float*, float*, int32_t*);
template void max_pool2d_forward<double>(const MaxPool2dShape&, const double*, double*,
                                         int32_t*);
template void max_pool2d_backward<float>(const MaxPool2dShape&, const float*, const int32_t*,
                                         float*, GradMode, const float*);
template void max_pool2d_backward<double>(const MaxPool2dShape&, const double*, const int32_t*,
                                          double*, GradMode, const double*);

}  // namespace polytask::kernels::cpu
