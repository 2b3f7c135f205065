// The float 2x2 / stride-2 max pool of one (H, W) plane, on each instruction set's vectors (the
// workloads' only pool: 26x26 -> 13x13 and 11x11 -> 5x5 planes, NCHW). Included, like
// microkernels.h, once by each kernels/cpu/microkernels_<isa>.cpp inside its ISA namespace, so
// AVX2 and AVX-512 machines take a whole output row in one or two 8-float vectors rather than
// four 4-float ones; pool2d.cpp calls it through MicroKernels.
//
// Rows are short, so a row is not finished with scalar code: its last vector ends at the row's
// end and overlaps the one before, recomputing a few outputs identically (Overwrite writes; the
// Accumulate backward adds, so it finishes a row element by element instead).
#pragma once

#if !defined(POLYTASK_MICROKERNEL_LANES) || !defined(POLYTASK_MICROKERNEL_NAMESPACE)
#error "include pool_rows.h only from a kernels/cpu/microkernels_<isa>.cpp file"
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/grad_mode.h"

namespace polytask::kernels::cpu::POLYTASK_MICROKERNEL_NAMESPACE {

// R floats (and R int32 indices) per vector: 8 where the ISA has 256-bit vectors (a 13-output
// row is two vectors; 16 lanes would waste most of a vector), else 4; rows narrower than R
// take R = 4 (the 5-output rows).
template <int R>
struct PoolVectors {
  typedef float Value __attribute__((vector_size(R * sizeof(float))));
  typedef int32_t Index __attribute__((vector_size(R * sizeof(int32_t))));
};
constexpr int kPoolLanes = POLYTASK_MICROKERNEL_LANES >= 8 ? 8 : 4;

template <class V>
inline V pool_load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
inline void pool_store(void* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// pool2d.cpp's comparison rule (keep_max): v replaces best when larger (strict, so the first
// of equal maxima stays) or when it is the first NaN.
template <class V, class I>
inline void pool_keep_max(V v, I index, V& best, I& best_index) {
  const I take = ((v <= best) == 0) & (best == best);
  best = take ? v : best;
  best_index = take ? index : best_index;
}

// The even and odd elements of the 2R consecutive floats in (lo, hi), and back.
template <int R, class V>
inline V even_of(V lo, V hi) {
  if constexpr (R == 8)
    return __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14);
  else
    return __builtin_shufflevector(lo, hi, 0, 2, 4, 6);
}
template <int R, class V>
inline V odd_of(V lo, V hi) {
  if constexpr (R == 8)
    return __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15);
  else
    return __builtin_shufflevector(lo, hi, 1, 3, 5, 7);
}
template <int R, class V>
inline void interleave(V even, V odd, V& lo, V& hi) {
  if constexpr (R == 8) {
    lo = __builtin_shufflevector(even, odd, 0, 8, 1, 9, 2, 10, 3, 11);
    hi = __builtin_shufflevector(even, odd, 4, 12, 5, 13, 6, 14, 7, 15);
  } else {
    lo = __builtin_shufflevector(even, odd, 0, 4, 1, 5);
    hi = __builtin_shufflevector(even, odd, 2, 6, 3, 7);
  }
}

template <int R>
void max_pool_2x2_forward_rows(int64_t h_out, int64_t w_out, int64_t w_in, const float* x, float* y,
                               int32_t* argmax) {
  using V = typename PoolVectors<R>::Value;
  using I = typename PoolVectors<R>::Index;
  I lane_offsets{};  // 2 * lane: the lanes' window corners, relative to the first
  for (int l = 0; l < R; ++l) lane_offsets[l] = 2 * l;
  const int32_t w = static_cast<int32_t>(w_in);
  for (int64_t oh = 0; oh < h_out; ++oh) {
    const int64_t top = 2 * oh * w_in;
    const float* top_row = x + top;
    const float* bottom_row = top_row + w_in;
    for (int64_t start = 0; start < w_out; start += R) {
      const int64_t ow = std::min(start, w_out - R);
      const V t0 = pool_load<V>(top_row + 2 * ow), t1 = pool_load<V>(top_row + 2 * ow + R);
      const V b0 = pool_load<V>(bottom_row + 2 * ow), b1 = pool_load<V>(bottom_row + 2 * ow + R);
      const I left = static_cast<int32_t>(top + 2 * ow) + lane_offsets;
      V best = even_of<R>(t0, t1);
      I best_index = left;
      pool_keep_max(odd_of<R>(t0, t1), left + 1, best, best_index);
      pool_keep_max(even_of<R>(b0, b1), left + w, best, best_index);
      pool_keep_max(odd_of<R>(b0, b1), left + w + 1, best, best_index);
      pool_store(y + oh * w_out + ow, best);
      pool_store(argmax + oh * w_out + ow, best_index);
    }
  }
}

// y (h_out x w_out) and argmax (indices in the plane) of the 2x2 / stride-2 windows of the
// h_in x w_in plane x. Needs w_out >= 4.
inline void max_pool_2x2_forward_plane(int64_t h_out, int64_t w_out, int64_t w_in, const float* x,
                                       float* y, int32_t* argmax) {
  if (w_out >= kPoolLanes)
    max_pool_2x2_forward_rows<kPoolLanes>(h_out, w_out, w_in, x, y, argmax);
  else
    max_pool_2x2_forward_rows<4>(h_out, w_out, w_in, x, y, argmax);
}

// One output vector's four window positions, each the dy of the lanes whose argmax chose it
// (0 elsewhere), written as two interleaved input rows: dx = base + that, where base is 0
// (Overwrite) or dx (Accumulate), and an unchosen position keeps base as it is.
template <int R>
void max_pool_2x2_backward_rows(int64_t h_out, int64_t w_out, int64_t w_in, const float* dy,
                                const int32_t* argmax, const float* relu_y, float* dx,
                                bool accumulate) {
  using V = typename PoolVectors<R>::Value;
  using I = typename PoolVectors<R>::Index;
  I lane_offsets{};
  for (int l = 0; l < R; ++l) lane_offsets[l] = 2 * l;
  const int32_t w = static_cast<int32_t>(w_in);
  const auto place = [&](float* dx_row, int64_t ow, V grad, I chosen_even, I chosen_odd) {
    V even_base{}, odd_base{};
    if (accumulate) {
      const V lo = pool_load<V>(dx_row + 2 * ow), hi = pool_load<V>(dx_row + 2 * ow + R);
      even_base = even_of<R>(lo, hi);
      odd_base = odd_of<R>(lo, hi);
    }
    V lo, hi;
    interleave<R>(chosen_even ? even_base + grad : even_base,
                  chosen_odd ? odd_base + grad : odd_base, lo, hi);
    pool_store(dx_row + 2 * ow, lo);
    pool_store(dx_row + 2 * ow + R, hi);
  };
  for (int64_t oh = 0; oh < h_out; ++oh) {
    const int64_t top = 2 * oh * w_in;
    float* top_row = dx + top;
    float* bottom_row = top_row + w_in;
    const int64_t vector_end = accumulate ? w_out / R * R : w_out;
    for (int64_t start = 0; start < vector_end; start += R) {
      const int64_t ow = std::min(start, w_out - R);
      const int64_t o = oh * w_out + ow;
      V grad = pool_load<V>(dy + o);
      if (relu_y) grad = pool_load<V>(relu_y + o) > 0.0f ? grad : V{};  // relu_backward's select
      const I corner =
          pool_load<I>(argmax + o) - (static_cast<int32_t>(top + 2 * ow) + lane_offsets);
      place(top_row, ow, grad, corner == 0, corner == 1);
      place(bottom_row, ow, grad, corner == w, corner == w + 1);
    }
    for (int64_t ow = vector_end; ow < w_out; ++ow) {  // Accumulate's tail, one by one
      const int64_t o = oh * w_out + ow;
      const float grad = relu_y && !(relu_y[o] > 0.0f) ? 0.0f : dy[o];
      dx[argmax[o]] += grad;
    }
  }
}

// dx of the plane for the 2x2 / stride-2 pool: Overwrite writes every element (zero where no
// window chose it, including a dropped last row or column), Accumulate adds onto dx. relu_y:
// the fused ReLU backward's gate, or nullptr (kernels/pool2d.h). Needs w_out >= 4.
inline void max_pool_2x2_backward_plane(int64_t h_in, int64_t w_in, int64_t h_out, int64_t w_out,
                                        const float* dy, const int32_t* argmax, const float* relu_y,
                                        float* dx, bool accumulate) {
  if (w_out >= kPoolLanes)
    max_pool_2x2_backward_rows<kPoolLanes>(h_out, w_out, w_in, dy, argmax, relu_y, dx, accumulate);
  else
    max_pool_2x2_backward_rows<4>(h_out, w_out, w_in, dy, argmax, relu_y, dx, accumulate);
  if (accumulate) return;
  // What no window covers: the columns past 2 * w_out and the rows past 2 * h_out.
  for (int64_t r = 0; r < 2 * h_out; ++r)
    std::fill(dx + r * w_in + 2 * w_out, dx + (r + 1) * w_in, 0.0f);
  std::fill(dx + 2 * h_out * w_in, dx + h_in * w_in, 0.0f);
}

}  // namespace polytask::kernels::cpu::POLYTASK_MICROKERNEL_NAMESPACE
