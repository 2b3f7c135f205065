// CPU reference max pooling. Each (n, c) plane is independent, so OpenMP splits the planes:
// no two threads touch the same dx element even when windows overlap (stride < kernel), and
// the overlapping contributions are summed in a fixed order. The forward has one comparison
// rule (keep_max) for two loops: any window, one output at a time, and the workloads' 2x2 /
// stride-2 window, a vector of outputs at a time (8x faster at the workload's shapes).
#include "kernels/pool2d.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/cpu/parallel.h"
#include "kernels/error.h"

namespace polytask::kernels::cpu {

namespace {

// 16-byte vectors (GCC/Clang vector extensions, so SSE2 on x86-64 and NEON on Arm without
// intrinsics): 4 floats or 2 doubles, with index lanes of the same width as the value lanes
// (int32 or int64), which are also the types a lane-wise comparison yields.
template <class T>
struct Lanes {
  static constexpr int64_t kCount = 16 / sizeof(T);
  using Index = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  using Value __attribute__((vector_size(16))) = T;
  using Mask __attribute__((vector_size(16))) = Index;
};

template <class V>
inline V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
inline void store(void* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// take ? a : b, for a scalar condition, or lane by lane for a mask (all ones or all zeros).
template <class M, class V>
inline V select(M take, V a, V b) {
  return take ? a : b;  // vectors: GCC/Clang's lane-wise ?: (blendv or and/andnot/or)
}

// The one comparison rule of every path below, on scalars or lane by lane on vectors: v
// replaces best when it is larger (strict '>', so the first of equal maxima stays) or when it
// is the first NaN (no comparison with a NaN best is true afterwards, so the first NaN
// stays). Selects rather than branches: random data would mispredict half the branches.
template <class V, class I>
inline void keep_max(V v, I index, V& best, I& best_index) {
  // !(v <= best) is "v > best, or v or best is NaN"; best == best then rules out a NaN best.
  const auto take = ((v <= best) == 0) & (best == best);
  best = select(take, v, best);
  best_index = select(take, index, best_index);
}

bool is_2x2_stride_2(const MaxPool2dShape& s) {
  return s.k_h == 2 && s.k_w == 2 && s.stride_h == 2 && s.stride_w == 2;
}

// Whether max_pool_2x2_plane takes the shape (narrower maps use the generic loop).
template <class T>
bool has_2x2_path(const MaxPool2dShape& s) {
  return is_2x2_stride_2(s) && s.w_out >= Lanes<T>::kCount;
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

// The workloads' 2x2 / stride-2 window, one output row from a pair of input rows, visiting
// each window as the generic loop does (top-left, top-right, bottom-left, bottom-right), a
// vector of outputs at a time. The rows are short (13 and 5 outputs in the workloads), so
// rather than finishing a row with scalar code, the last vector ends at the row's end and
// overlaps the one before it: it recomputes a few outputs, identically. Needs w_out >= lanes.
template <class T>
void max_pool_2x2_plane(const MaxPool2dShape& s, const T* xp, T* yp, int32_t* ap) {
  using L = Lanes<T>;
  using V = typename L::Value;
  using M = typename L::Mask;
  using Index = typename L::Index;
  constexpr int64_t kLanes = L::kCount;
  // Locals, not s.*: the memcpy stores below may alias anything, which would make the
  // compiler reload the shape after every one.
  const int64_t h_out = s.h_out, w_out = s.w_out, w_in = s.w_in;
  M lane_offsets{};  // 2 * lane: the window corners of the lanes, relative to the first
  for (int64_t l = 0; l < kLanes; ++l) lane_offsets[l] = static_cast<Index>(2 * l);
  for (int64_t oh = 0; oh < h_out; ++oh) {
    const int64_t top = 2 * oh * w_in;
    const T* top_row = xp + top;
    const T* bottom_row = top_row + w_in;
    T* y_row = yp + oh * w_out;
    int32_t* a_row = ap + oh * w_out;
    for (int64_t start = 0; start < w_out; start += kLanes) {
      const int64_t ow = std::min(start, w_out - kLanes);
      // Two vectors of a row hold 2 * kLanes consecutive inputs; the even ones are the
      // windows' left column, the odd ones their right column.
      const V t0 = load<V>(top_row + 2 * ow), t1 = load<V>(top_row + 2 * ow + kLanes);
      const V b0 = load<V>(bottom_row + 2 * ow), b1 = load<V>(bottom_row + 2 * ow + kLanes);
      V top_left, top_right, bottom_left, bottom_right;
      if constexpr (kLanes == 4) {
        top_left = __builtin_shufflevector(t0, t1, 0, 2, 4, 6);
        top_right = __builtin_shufflevector(t0, t1, 1, 3, 5, 7);
        bottom_left = __builtin_shufflevector(b0, b1, 0, 2, 4, 6);
        bottom_right = __builtin_shufflevector(b0, b1, 1, 3, 5, 7);
      } else {
        top_left = __builtin_shufflevector(t0, t1, 0, 2);
        top_right = __builtin_shufflevector(t0, t1, 1, 3);
        bottom_left = __builtin_shufflevector(b0, b1, 0, 2);
        bottom_right = __builtin_shufflevector(b0, b1, 1, 3);
      }
      const M left = static_cast<Index>(top + 2 * ow) + lane_offsets;
      const Index w = static_cast<Index>(w_in);
      V best = top_left;
      M best_index = left;
      keep_max(top_right, left + 1, best, best_index);
      keep_max(bottom_left, left + w, best, best_index);
      keep_max(bottom_right, left + w + 1, best, best_index);
      store(y_row + ow, best);
      if constexpr (sizeof(Index) == sizeof(int32_t)) {
        store(a_row + ow, best_index);
      } else {
        for (int64_t l = 0; l < kLanes; ++l) a_row[ow + l] = static_cast<int32_t>(best_index[l]);
      }
    }
  }
}

}  // namespace

template <class T>
void max_pool2d_forward(const MaxPool2dShape& s, const T* x, T* y, int32_t* argmax) {
  const int64_t in_plane = s.h_in * s.w_in, out_plane = s.h_out * s.w_out, planes = s.n * s.c;
  if (in_plane > std::numeric_limits<int32_t>::max())
    fail("max_pool2d: a ", s.h_in, "x", s.w_in, " plane is too large for int32 argmax indices");
  const bool fast = has_2x2_path<T>(s);
  const int threads = parallel_threads(planes * out_plane * s.k_h * s.k_w);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t p = 0; p < planes; ++p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    int32_t* ap = argmax + p * out_plane;
    if (fast)
      max_pool_2x2_plane(s, xp, yp, ap);
    else
      max_pool_plane(s, xp, yp, ap);
  }
}

template <class T>
void max_pool2d_backward(const MaxPool2dShape& s, const T* dy, const int32_t* argmax, T* dx,
                         GradMode mode, const T* relu_y) {
  const int64_t in_plane = s.h_in * s.w_in, out_plane = s.h_out * s.w_out, planes = s.n * s.c;
  const int threads = parallel_threads(planes * in_plane);
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
