// The float convolution: the threads split the batch, each runs its images in chunks through
// its own im2col buffer and polytask's micro-kernels (kernels/cpu/sgemm.h):
//   forward        mat (C_out, cols) = W (packed once) · col, scattered into y with bias, ReLU;
//   backward-data  dcol (patch, cols) = Wᵀ (packed once) · dy chunk, then col2im into dx;
//   backward-filter  [dW_t db_t] (C_out, patch + 1) += dy chunk · [col; 1]ᵀ as row dot
//                  products (the pixels are the contiguous axis of both), one partial per
//                  thread, summed in thread order at the end.
// A chunk's col is sized to stay in the core's L2 cache. Each thread's buffers are its own
// (thread_scratch), so nothing is shared but the packed weights and the read-only inputs.
#include "kernels/cpu/conv2d_fast.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/conv2d_parts.h"
#include "kernels/cpu/parallel.h"

namespace polytask::kernels::cpu {

using namespace conv2d_parts;

namespace {

// im2col floats per chunk. Forward and backward-data read col (or write dcol) once right after
// it is made, so it should stay in L2 with room to spare: 128 KiB (one 32x13x13 -> 64x11x11
// image) measured fastest, 1 MiB a third slower. The filter gradient wants long dot products
// (every tile reduces its vectors across lanes once per chunk): 1 MiB measured fastest there.
constexpr int64_t kChunkColumnElements = int64_t{1} << 15;
constexpr int64_t kFilterChunkColumnElements = int64_t{1} << 18;

// Scratch slots (thread_scratch): 0, 1 and 7 belong to the GEMM drivers.
enum Slot { kPackedWeights = 2, kCol = 3, kMat = 4, kPartial = 5 };

int64_t chunk_images(const Conv2dShape& s, int64_t column_elements) {
  const int64_t per_image = std::max<int64_t>(1, s.patch_size() * s.out_pixels());
  return std::clamp<int64_t>(column_elements / per_image, 1, std::max<int64_t>(s.n, 1));
}

// im2col's and col2im's row moves on the micro-kernels' vectors.
struct VectorRows {
  const MicroKernels* uk;
  void copy(float* dst, const float* src, int64_t n) const { uk->copy_row(dst, src, n); }
  void add(float* dst, const float* src, int64_t n) const { uk->add_row(dst, src, n); }
};

// Zeroes columns [cols, padded) of `rows` rows ld apart, so that dot products over the padded
// length run whole vectors and add nothing for the padding.
void zero_tail(float* m, int64_t rows, int64_t ld, int64_t cols, int64_t padded) {
  for (int64_t r = 0; r < rows; ++r) std::fill(m + r * ld + cols, m + r * ld + padded, 0.0f);
}

// Threads worth waking for this many multiply-adds (one for small layers and single images).
int team_size(const Conv2dShape& s) {
  const double work = s.forward_flops() / 2;
  if (work < double(kParallelThreshold) * 16) return 1;
  return int(std::clamp<int64_t>(s.n, 1, omp_get_max_threads()));
}

// Images [first, last) of thread t of `team`.
struct Range {
  int64_t first, last;
};
Range thread_images(int64_t n, int64_t t, int64_t team) { return {n * t / team, n * (t + 1) / team}; }

// Calls body(n0, images, ld) for each chunk of this thread's images; ld is the row stride of
// the chunk's col and mat (column_stride of the largest chunk).
template <class Body>
void for_each_chunk(const Conv2dShape& s, Range r, int64_t column_elements, Body body) {
  const int64_t chunk = chunk_images(s, column_elements);
  const int64_t ld = column_stride(chunk * s.out_pixels());
  for (int64_t n0 = r.first; n0 < r.last; n0 += chunk) body(n0, std::min(chunk, r.last - n0), ld);
}

}  // namespace

void conv2d_forward_fast(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                         const float* w, const float* b, float* y, bool relu) {
  if (s.n <= 0) return;
  const int64_t patch = s.patch_size(), hw = s.out_pixels(), in_image = s.c_in * s.h_in * s.w_in;
  const PackedLayout la = packed_layout(s.c_out, patch, uk.mr);
  float* packed_w = thread_scratch(kPackedWeights, la.elements());
  pack_operand(la, [&](int64_t co, int64_t k) { return w[co * patch + k]; }, packed_w);
  const int team = team_size(s);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    const Range r = thread_images(s.n, omp_get_thread_num(), omp_get_num_threads());
    for_each_chunk(s, r, kChunkColumnElements, [&](int64_t n0, int64_t images, int64_t ld) {
      float* col = thread_scratch(kCol, patch * ld);
      float* mat = thread_scratch(kMat, s.c_out * ld);
      im2col(s, x + n0 * in_image, images, col, ld, false, VectorRows{&uk});
      gemm_nn(uk, la, packed_w, images * hw, col, ld, 1.0f, 0.0f, mat, ld);
      scatter_chunk(s, mat, b, n0, images, y, ld, relu, false);
    });
  }
}

void conv2d_backward_data_fast(const MicroKernels& uk, const Conv2dShape& s, const float* dy,
                               const float* w, float* dx, GradMode mode) {
  if (s.n <= 0) return;
  const int64_t patch = s.patch_size(), hw = s.out_pixels(), in_image = s.c_in * s.h_in * s.w_in;
  const PackedLayout la = packed_layout(patch, s.c_out, uk.mr);
  float* packed_wt = thread_scratch(kPackedWeights, la.elements());
  pack_operand(la, [&](int64_t k, int64_t co) { return w[co * patch + k]; }, packed_wt);
  const int team = team_size(s);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    const Range r = thread_images(s.n, omp_get_thread_num(), omp_get_num_threads());
    for_each_chunk(s, r, kChunkColumnElements, [&](int64_t n0, int64_t images, int64_t ld) {
      float* dcol = thread_scratch(kCol, patch * ld);
      float* mat = thread_scratch(kMat, s.c_out * ld);
      gather_chunk(s, dy, n0, images, mat, ld, false);
      gemm_nn(uk, la, packed_wt, images * hw, mat, ld, 1.0f, 0.0f, dcol, ld);
      col2im(s, dcol, images, ld, dx + n0 * in_image, mode, false, VectorRows{&uk});
    });
  }
}

void conv2d_backward_filter_fast(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                                 const float* dy, float* dw, float* db, GradMode mode) {
  const int64_t patch = s.patch_size(), hw = s.out_pixels(), in_image = s.c_in * s.h_in * s.w_in;
  const int64_t weights = s.c_out * patch;
  if (s.n <= 0) {
    // An empty batch contributes nothing, but Overwrite still promises a written gradient.
    if (mode == GradMode::Overwrite) {
      std::fill_n(dw, weights, 0.0f);
      if (db) std::fill_n(db, s.c_out, 0.0f);
    }
    return;
  }
  // Each partial holds dW with one more column: the bias gradient, the dot product of each
  // dy row with a row of ones appended to col (so db costs one more B row, not a pass).
  const int64_t wide = patch + 1;
  const int team = team_size(s);
  std::vector<float*> partials(size_t(team), nullptr);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    const int t = omp_get_thread_num();
    const Range r = thread_images(s.n, t, omp_get_num_threads());
    float* partial = thread_scratch(kPartial, s.c_out * wide);
    partials[size_t(t)] = partial;
    std::fill_n(partial, s.c_out * wide, 0.0f);
    for_each_chunk(s, r, kFilterChunkColumnElements, [&](int64_t n0, int64_t images, int64_t ld) {
      const int64_t cols = images * hw, padded = (cols + uk.lanes - 1) / uk.lanes * uk.lanes;
      float* col = thread_scratch(kCol, wide * ld);
      float* mat = thread_scratch(kMat, s.c_out * ld);
      im2col(s, x + n0 * in_image, images, col, ld, false, VectorRows{&uk});
      std::fill_n(col + patch * ld, cols, 1.0f);
      zero_tail(col, wide, ld, cols, padded);
      gather_chunk(s, dy, n0, images, mat, ld, false);
      zero_tail(mat, s.c_out, ld, cols, padded);
      // partial (C_out, patch + 1) += dy chunk (C_out, cols) · [col; 1]ᵀ (cols, patch + 1)
      gemm_nt(uk, s.c_out, wide, padded, 1.0f, mat, ld, col, ld, 1.0f, partial, wide);
    });
  }
  // Fixed order over threads: the same bits for the same thread count, every run.
#pragma omp parallel for schedule(static) if (s.c_out * wide * team > kParallelThreshold)
  for (int64_t co = 0; co < s.c_out; ++co) {
    for (int64_t j = 0; j < wide; ++j) {
      float sum = partials[0][co * wide + j];
      for (int t = 1; t < team; ++t) sum += partials[size_t(t)][co * wide + j];
      if (j < patch)
        store_grad(mode, dw[co * patch + j], sum);
      else if (db)
        store_grad(mode, db[co], sum);
    }
  }
}

template <>
void conv2d_forward<float>(const Conv2dShape& s, const float* x, const float* w, const float* b,
                           float* y, float*, bool relu) {
  conv2d_forward_fast(active_micro_kernels(), s, x, w, b, y, relu);
}

template <>
void conv2d_backward_data<float>(const Conv2dShape& s, const float* dy, const float* w,
                                 float* dx, GradMode mode, float*) {
  conv2d_backward_data_fast(active_micro_kernels(), s, dy, w, dx, mode);
}

template <>
void conv2d_backward_filter<float>(const Conv2dShape& s, const float* x, const float* dy,
                                   float* dw, float* db, GradMode mode, float*) {
  conv2d_backward_filter_fast(active_micro_kernels(), s, x, dy, dw, db, mode);
}

}  // namespace polytask::kernels::cpu
