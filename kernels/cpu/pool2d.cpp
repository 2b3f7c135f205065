// CPU reference max pooling. Each (n, c) plane is independent, so OpenMP splits the planes:
// no two threads touch the same dx element even when windows overlap (stride < kernel), and
// the overlapping contributions are summed in a fixed order.
#include "kernels/pool2d.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/parallel.h"
#include "kernels/error.h"

namespace polytask::kernels::cpu {

namespace {

// Takes v when it beats best under the rules of the generic loop below (strict '>', first NaN
// wins), as selects rather than branches so that loops over outputs vectorise.
template <class T>
inline void keep_max(T v, int64_t index, T& best, int64_t& best_index) {
  const bool take = v > best || (v != v && best == best);
  best = take ? v : best;
  best_index = take ? index : best_index;
}

// The workloads' 2x2 / stride-2 window on one plane, in the generic loop's visiting order.
template <class T>
void max_pool_2x2(const MaxPool2dShape& s, const T* xp, T* yp, int32_t* ap) {
  for (int64_t oh = 0; oh < s.h_out; ++oh) {
    const int64_t top = 2 * oh * s.w_in, bottom = top + s.w_in;
#pragma omp simd
    for (int64_t ow = 0; ow < s.w_out; ++ow) {
      int64_t best_index = top + 2 * ow;
      T best = xp[best_index];
      keep_max(xp[top + 2 * ow + 1], top + 2 * ow + 1, best, best_index);
      keep_max(xp[bottom + 2 * ow], bottom + 2 * ow, best, best_index);
      keep_max(xp[bottom + 2 * ow + 1], bottom + 2 * ow + 1, best, best_index);
      yp[oh * s.w_out + ow] = best;
      ap[oh * s.w_out + ow] = static_cast<int32_t>(best_index);
    }
  }
}

}  // namespace

template <class T>
void max_pool2d_forward(const MaxPool2dShape& s, const T* x, T* y, int32_t* argmax) {
  const int64_t in_plane = s.h_in * s.w_in, out_plane = s.h_out * s.w_out, planes = s.n * s.c;
  if (in_plane > std::numeric_limits<int32_t>::max())
    fail("max_pool2d: a ", s.h_in, "x", s.w_in, " plane is too large for int32 argmax indices");
#pragma omp parallel for schedule(static) \
    if (planes * out_plane * s.k_h * s.k_w > kParallelThreshold)
  for (int64_t p = 0; p < planes; ++p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    int32_t* ap = argmax + p * out_plane;
    if (s.k_h == 2 && s.k_w == 2 && s.stride_h == 2 && s.stride_w == 2) {
      max_pool_2x2(s, xp, yp, ap);
      continue;
    }
    for (int64_t oh = 0; oh < s.h_out; ++oh) {
      for (int64_t ow = 0; ow < s.w_out; ++ow) {
        const int64_t corner = oh * s.stride_h * s.w_in + ow * s.stride_w;
        int64_t best_index = corner;
        T best = xp[corner];
        for (int64_t i = 0; i < s.k_h; ++i) {
          for (int64_t j = 0; j < s.k_w; ++j) {
            const int64_t index = corner + i * s.w_in + j;
            const T v = xp[index];
            // Strict '>' keeps the first of equal maxima; the NaN test makes the first NaN
            // win and stay (no comparison with a NaN best is true afterwards).
            if (v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              best_index = index;
            }
          }
        }
        yp[oh * s.w_out + ow] = best;
        ap[oh * s.w_out + ow] = static_cast<int32_t>(best_index);
      }
    }
  }
}

template <class T>
void max_pool2d_backward(const MaxPool2dShape& s, const T* dy, const int32_t* argmax, T* dx,
                         GradMode mode) {
  const int64_t in_plane = s.h_in * s.w_in, out_plane = s.h_out * s.w_out, planes = s.n * s.c;
#pragma omp parallel for schedule(static) if (planes * in_plane > kParallelThreshold)
  for (int64_t p = 0; p < planes; ++p) {
    T* dxp = dx + p * in_plane;
    const T* dyp = dy + p * out_plane;
    const int32_t* ap = argmax + p * out_plane;
    // Zeroing first, then adding, handles both unchosen pixels and overlapping windows that
    // pick the same pixel.
    if (mode == GradMode::Overwrite) std::fill_n(dxp, in_plane, T(0));
    for (int64_t o = 0; o < out_plane; ++o) dxp[ap[o]] += dyp[o];
  }
}

template void max_pool2d_forward<float>(const MaxPool2dShape&, const float*, float*, int32_t*);
template void max_pool2d_forward<double>(const MaxPool2dShape&, const double*, double*,
                                         int32_t*);
template void max_pool2d_backward<float>(const MaxPool2dShape&, const float*, const int32_t*,
                                         float*, GradMode);
template void max_pool2d_backward<double>(const MaxPool2dShape&, const double*, const int32_t*,
                                          double*, GradMode);

}  // namespace polytask::kernels::cpu
