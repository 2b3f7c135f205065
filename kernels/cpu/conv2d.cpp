// CPU reference convolution (the double-precision oracle): im2col + one BLAS GEMM per chunk of
// the batch. The float path is conv2d_fast.cpp.
//
// Why chunks rather than one GEMM per image: an 11x11 output map gives a per-image GEMM an n
// of 121, too thin for OpenBLAS to spread over many cores; stacking a chunk of images side by
// side in the column buffer makes n = chunk * H_out * W_out. Why not the whole batch: the
// column buffer grows as N * C_in * K_h * K_w * H_out * W_out, so the chunk is capped at
// kMaxColumnElements and the workspace stays moderate whatever the batch size.
// The workspace holds a chunk's col and mat (layouts in kernels/cpu/conv2d_parts.h).
#include "kernels/conv2d.h"

#include <algorithm>

#include "kernels/cpu/conv2d_parts.h"
#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"

namespace polytask::kernels::cpu {

using namespace conv2d_parts;

namespace {

// Column-buffer cap in elements (8 MiB of float, 16 MiB of double). im2col writes the buffer
// and the GEMM reads it straight back, so it should stay in the last-level cache; beyond a
// few thousand columns a wider GEMM gains little. Measured on the batch-128 reference layers
// (Zen 4, 32 MiB L3): 2^21 beat 2^22 and 2^23 by 10-25%, and 2^18-2^20 starved the GEMM.
constexpr int64_t kMaxColumnElements = int64_t{1} << 21;

// Images per chunk: as many as fit the cap (at least one), then evened out so that a batch
// of 128 that needs two chunks runs 64 + 64 rather than 120 + 8.
int64_t most_chunk_images(const Conv2dShape& s) {
  const int64_t per_image = std::max<int64_t>(1, s.patch_size() * s.out_pixels());
  return std::clamp<int64_t>(kMaxColumnElements / per_image, 1, std::max<int64_t>(s.n, 1));
}

int64_t chunk_images(const Conv2dShape& s) {
  if (s.n <= 0) return 0;
  const int64_t most = most_chunk_images(s);
  const int64_t chunks = (s.n + most - 1) / most;
  return (s.n + chunks - 1) / chunks;
}

}  // namespace

// Sized by the cap, not by this batch's evened-out chunk: callers size the workspace once for
// their largest batch and run smaller ones in it, and a smaller batch can even out to larger
// chunks (cap 50: a batch of 128 runs 43 + 43 + 42, a batch of 50 runs one chunk of 50).
int64_t conv2d_workspace_elements(const Conv2dShape& s) {
  if (s.n <= 0) return 0;
  return most_chunk_images(s) * s.out_pixels() * (s.patch_size() + s.c_out);
}

template <class T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y,
                    T* workspace, bool relu) {
  const int64_t chunk = chunk_images(s), hw = s.out_pixels(), patch = s.patch_size();
  const int64_t in_image = s.c_in * s.h_in * s.w_in;
  T* col = workspace;
  T* mat = workspace + chunk * hw * patch;
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t images = std::min(chunk, s.n - n0), cols = images * hw;
    const bool parallel = cols * std::max(patch, s.c_out) > kParallelThreshold;
    im2col(s, x + n0 * in_image, images, col, cols, parallel);
    gemm(Transpose::No, Transpose::No, s.c_out, cols, patch, T(1), w, patch, col, cols, T(0), mat,
         cols);
    scatter_chunk(s, mat, b, n0, images, y, cols, relu, parallel);
  }
}

template <class T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx, GradMode mode,
                          T* workspace) {
  const int64_t chunk = chunk_images(s), hw = s.out_pixels(), patch = s.patch_size();
  const int64_t in_image = s.c_in * s.h_in * s.w_in;
  T* dcol = workspace;
  T* mat = workspace + chunk * hw * patch;
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t images = std::min(chunk, s.n - n0), cols = images * hw;
    const bool parallel = cols * std::max(patch, s.c_out) > kParallelThreshold;
    gather_chunk(s, dy, n0, images, mat, cols, parallel);
    // dcol (patch, cols) = wᵀ (patch, C_out) · dy_chunk (C_out, cols)
    gemm(Transpose::Yes, Transpose::No, patch, cols, s.c_out, T(1), w, patch, mat, cols, T(0),
         dcol, cols);
    col2im(s, dcol, images, cols, dx + n0 * in_image, mode, parallel);
  }
}

template <class T>
void conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* db,
                            GradMode mode, T* workspace) {
  const int64_t chunk = chunk_images(s), hw = s.out_pixels(), patch = s.patch_size();
  const int64_t in_image = s.c_in * s.h_in * s.w_in;
  if (s.n <= 0) {
    // An empty batch contributes nothing, but Overwrite still promises a written gradient.
    if (mode == GradMode::Overwrite) {
      std::fill_n(dw, s.c_out * patch, T(0));
      if (db) std::fill_n(db, s.c_out, T(0));
    }
    return;
  }
  T* col = workspace;
  T* mat = workspace + chunk * hw * patch;
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t images = std::min(chunk, s.n - n0), cols = images * hw;
    const bool parallel = cols * std::max(patch, s.c_out) > kParallelThreshold;
    im2col(s, x + n0 * in_image, images, col, cols, parallel);
    gather_chunk(s, dy, n0, images, mat, cols, parallel);
    // Only the first chunk may overwrite; BLAS ignores dw's old contents when beta is 0, so
    // a NaN-poisoned buffer is fine.
    const T beta = (n0 == 0 && mode == GradMode::Overwrite) ? T(0) : T(1);
    // dw (C_out, patch) += dy_chunk (C_out, cols) · colᵀ (cols, patch)
    gemm(Transpose::No, Transpose::Yes, s.c_out, patch, cols, T(1), mat, cols, col, cols, beta,
         dw, patch);
  }
  if (db) bias_gradient(s, dy, db, mode);
}

template void conv2d_forward<double>(const Conv2dShape&, const double*, const double*,
                                     const double*, double*, double*, bool);
template void conv2d_backward_data<double>(const Conv2dShape&, const double*, const double*,
                                           double*, GradMode, double*);
template void conv2d_backward_filter<double>(const Conv2dShape&, const double*, const double*,
                                             double*, double*, GradMode, double*);

}  // namespace polytask::kernels::cpu
