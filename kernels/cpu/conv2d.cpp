// CPU reference convolution: im2col + one BLAS GEMM per chunk of the batch.
//
// Why chunks rather than one GEMM per image: an 11x11 output map gives a per-image GEMM an n
// of 121, too thin for OpenBLAS to spread over many cores; stacking a chunk of images side by
// side in the column buffer makes n = chunk * H_out * W_out. Why not the whole batch: the
// column buffer grows as N * C_in * K_h * K_w * H_out * W_out, so the chunk is capped at
// kMaxColumnElements and the workspace stays moderate whatever the batch size.
//
// Layouts inside the workspace, for a chunk of `images` images (cols = images * H_out * W_out):
//   col (patch, cols): row (c * K_h + ki) * K_w + kj, column img * HW + oh * W_out + ow holds
//                      x[img, c, oh * stride_h - pad_top + ki, ow * stride_w - pad_left + kj]
//                      (zero where that falls into the padding);
//   mat (C_out, cols): the GEMM's y (forward) or the chunk's dy gathered into that shape.
// Every loop that writes memory is split over disjoint (image, channel) planes, so the
// OpenMP parallelism needs no atomics and sums run in a fixed order (bit-reproducible).
#include "kernels/conv2d.h"

#include <algorithm>

#include "kernels/cpu/parallel.h"
#include "kernels/gemm.h"

namespace polytask::kernels::cpu {

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

// Output positions o in [begin, end) whose tap o * stride - pad + k lands inside [0, in).
struct Span {
  int64_t begin = 0, end = 0;
};
Span valid_outputs(int64_t in, int64_t out, int64_t stride, int64_t pad, int64_t k) {
  const int64_t lo = pad - k;           // need o * stride >= lo
  const int64_t hi = in - 1 + pad - k;  // need o * stride <= hi
  if (hi < 0) return {};
  const int64_t begin = lo > 0 ? (lo + stride - 1) / stride : 0;
  const int64_t end = std::min(out, hi / stride + 1);
  return {std::min(begin, end), end};
}

template <class T>
void im2col(const Conv2dShape& s, const T* x, int64_t images, T* col) {
  const int64_t hw = s.out_pixels(), cols = images * hw, in_plane = s.h_in * s.w_in;
  const bool parallel = cols * s.patch_size() > kParallelThreshold;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t img = 0; img < images; ++img) {
    for (int64_t c = 0; c < s.c_in; ++c) {
      const T* plane = x + (img * s.c_in + c) * in_plane;
      for (int64_t ki = 0; ki < s.k_h; ++ki) {
        const Span rows = valid_outputs(s.h_in, s.h_out, s.stride_h, s.pad_top, ki);
        for (int64_t kj = 0; kj < s.k_w; ++kj) {
          const Span span = valid_outputs(s.w_in, s.w_out, s.stride_w, s.pad_left, kj);
          T* dst = col + ((c * s.k_h + ki) * s.k_w + kj) * cols + img * hw;
          std::fill_n(dst, rows.begin * s.w_out, T(0));
          for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
            T* out = dst + oh * s.w_out;
            // src[ow * stride_w] is the tap of output column ow; only valid ones are read.
            const T* row = plane + (oh * s.stride_h - s.pad_top + ki) * s.w_in;
            const int64_t shift = kj - s.pad_left;
            std::fill_n(out, span.begin, T(0));
            if (span.begin == span.end) {
              // the whole row is padding (a kernel wider than a 'same' input)
            } else if (s.stride_w == 1) {
              std::copy(row + span.begin + shift, row + span.end + shift, out + span.begin);
            } else {
              for (int64_t ow = span.begin; ow < span.end; ++ow)
                out[ow] = row[ow * s.stride_w + shift];
            }
            std::fill(out + span.end, out + s.w_out, T(0));
          }
          std::fill(dst + rows.end * s.w_out, dst + hw, T(0));
        }
      }
    }
  }
}

// The adjoint of im2col: every column entry is added back onto the input pixel it was copied
// from. Overwrite zeroes the plane first, which also covers pixels that no window reads
// (a stride larger than the kernel, or the bottom/right rows 'valid' drops).
template <class T>
void col2im(const Conv2dShape& s, const T* col, int64_t images, T* dx, GradMode mode) {
  const int64_t hw = s.out_pixels(), cols = images * hw, in_plane = s.h_in * s.w_in;
  const bool parallel = cols * s.patch_size() > kParallelThreshold;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t img = 0; img < images; ++img) {
    for (int64_t c = 0; c < s.c_in; ++c) {
      T* plane = dx + (img * s.c_in + c) * in_plane;
      if (mode == GradMode::Overwrite) std::fill_n(plane, in_plane, T(0));
      for (int64_t ki = 0; ki < s.k_h; ++ki) {
        const Span rows = valid_outputs(s.h_in, s.h_out, s.stride_h, s.pad_top, ki);
        for (int64_t kj = 0; kj < s.k_w; ++kj) {
          const Span span = valid_outputs(s.w_in, s.w_out, s.stride_w, s.pad_left, kj);
          const T* src = col + ((c * s.k_h + ki) * s.k_w + kj) * cols + img * hw;
          const int64_t shift = kj - s.pad_left;
          for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
            const T* in = src + oh * s.w_out;
            T* row = plane + (oh * s.stride_h - s.pad_top + ki) * s.w_in;
            for (int64_t ow = span.begin; ow < span.end; ++ow)
              row[ow * s.stride_w + shift] += in[ow];
          }
        }
      }
    }
  }
}

// mat (C_out, images * HW) <- dy images [n0, n0 + images) of (N, C_out, HW).
template <class T>
void gather_chunk(const Conv2dShape& s, const T* dy, int64_t n0, int64_t images, T* mat) {
  const int64_t hw = s.out_pixels(), cols = images * hw;
#pragma omp parallel for collapse(2) schedule(static) if (cols * s.c_out > kParallelThreshold)
  for (int64_t co = 0; co < s.c_out; ++co) {
    for (int64_t img = 0; img < images; ++img) {
      const T* src = dy + ((n0 + img) * s.c_out + co) * hw;
      std::copy(src, src + hw, mat + co * cols + img * hw);
    }
  }
}

// y images [n0, n0 + images) of (N, C_out, HW) <- mat (C_out, images * HW) + b.
template <class T>
void scatter_chunk(const Conv2dShape& s, const T* mat, const T* b, int64_t n0, int64_t images,
                   T* y) {
  const int64_t hw = s.out_pixels(), cols = images * hw;
#pragma omp parallel for collapse(2) schedule(static) if (cols * s.c_out > kParallelThreshold)
  for (int64_t img = 0; img < images; ++img) {
    for (int64_t co = 0; co < s.c_out; ++co) {
      const T* src = mat + co * cols + img * hw;
      T* dst = y + ((n0 + img) * s.c_out + co) * hw;
      const T bias = b ? b[co] : T(0);
      for (int64_t p = 0; p < hw; ++p) dst[p] = src[p] + bias;
    }
  }
}

// db[co] = sum of dy over images and pixels, in double and in a fixed order.
template <class T>
void bias_gradient(const Conv2dShape& s, const T* dy, T* db, GradMode mode) {
  const int64_t hw = s.out_pixels();
#pragma omp parallel for schedule(static) if (s.n * s.c_out * hw > kParallelThreshold)
  for (int64_t co = 0; co < s.c_out; ++co) {
    double sum = 0;
    for (int64_t img = 0; img < s.n; ++img) {
      const T* src = dy + (img * s.c_out + co) * hw;
      for (int64_t p = 0; p < hw; ++p) sum += double(src[p]);
    }
    store_grad(mode, db[co], static_cast<T>(sum));
  }
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
                    T* workspace) {
  const int64_t chunk = chunk_images(s), hw = s.out_pixels(), patch = s.patch_size();
  const int64_t in_image = s.c_in * s.h_in * s.w_in;
  T* col = workspace;
  T* mat = workspace + chunk * hw * patch;
  for (int64_t n0 = 0; n0 < s.n; n0 += chunk) {
    const int64_t images = std::min(chunk, s.n - n0), cols = images * hw;
    im2col(s, x + n0 * in_image, images, col);
    gemm(Transpose::No, Transpose::No, s.c_out, cols, patch, T(1), w, patch, col, cols, T(0), mat,
         cols);
    scatter_chunk(s, mat, b, n0, images, y);
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
    gather_chunk(s, dy, n0, images, mat);
    // dcol (patch, cols) = wᵀ (patch, C_out) · dy_chunk (C_out, cols)
    gemm(Transpose::Yes, Transpose::No, patch, cols, s.c_out, T(1), w, patch, mat, cols, T(0),
         dcol, cols);
    col2im(s, dcol, images, dx + n0 * in_image, mode);
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
    im2col(s, x + n0 * in_image, images, col);
    gather_chunk(s, dy, n0, images, mat);
    // Only the first chunk may overwrite; BLAS ignores dw's old contents when beta is 0, so
    // a NaN-poisoned buffer is fine.
    const T beta = (n0 == 0 && mode == GradMode::Overwrite) ? T(0) : T(1);
    // dw (C_out, patch) += dy_chunk (C_out, cols) · colᵀ (cols, patch)
    gemm(Transpose::No, Transpose::Yes, s.c_out, patch, cols, T(1), mat, cols, col, cols, beta,
         dw, patch);
  }
  if (db) bias_gradient(s, dy, db, mode);
}

template void conv2d_forward<float>(const Conv2dShape&, const float*, const float*, const float*,
                                    float*, float*);
template void conv2d_forward<double>(const Conv2dShape&, const double*, const double*,
                                     const double*, double*, double*);
template void conv2d_backward_data<float>(const Conv2dShape&, const float*, const float*, float*,
                                          GradMode, float*);
template void conv2d_backward_data<double>(const Conv2dShape&, const double*, const double*,
                                           double*, GradMode, double*);
template void conv2d_backward_filter<float>(const Conv2dShape&, const float*, const float*,
                                            float*, float*, GradMode, float*);
template void conv2d_backward_filter<double>(const Conv2dShape&, const double*, const double*,
                                             double*, double*, GradMode, double*);

}  // namespace polytask::kernels::cpu
