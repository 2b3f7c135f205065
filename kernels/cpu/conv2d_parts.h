// The pieces both CPU convolutions share (the im2col reference in conv2d.cpp and the float
// fast path in conv2d_fast.cpp): im2col and its adjoint, dy gathered into GEMM shape, the
// output scattered back with bias (and ReLU), the bias gradient.
//
// Layouts, for a chunk of `images` images (cols = images * H_out * W_out, rows ld apart):
//   col (patch, cols): row (c * K_h + ki) * K_w + kj, column img * HW + oh * W_out + ow holds
//                      x[img, c, oh * stride_h - pad_top + ki, ow * stride_w - pad_left + kj]
//                      (zero where that falls into the padding);
//   mat (C_out, cols): the GEMM's y (forward) or the chunk's dy gathered into that shape.
// Every loop that writes memory is split over disjoint (image, channel) planes, so the
// OpenMP parallelism needs no atomics and sums run in a fixed order (bit-reproducible).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cpu/parallel.h"
#include "kernels/grad_mode.h"

namespace polytask::kernels::cpu::conv2d_parts {

// Output positions o in [begin, end) whose tap o * stride - pad + k lands inside [0, in).
struct Span {
  int64_t begin = 0, end = 0;
};
inline Span valid_outputs(int64_t in, int64_t out, int64_t stride, int64_t pad, int64_t k) {
  const int64_t lo = pad - k;           // need o * stride >= lo
  const int64_t hi = in - 1 + pad - k;  // need o * stride <= hi
  if (hi < 0) return {};
  const int64_t begin = lo > 0 ? (lo + stride - 1) / stride : 0;
  const int64_t end = std::min(out, hi / stride + 1);
  return {std::min(begin, end), end};
}

// How im2col and col2im move a run of one output row's taps (stride 1): copy and add back.
// The reference uses these; the float path passes its micro-kernels' vector versions.
struct PlainRows {
  template <class T>
  void copy(T* dst, const T* src, int64_t n) const {
    std::copy(src, src + n, dst);
  }
  template <class T>
  void add(T* dst, const T* src, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
  }
};

// col row r starts at col + r * ld (ld >= images * HW). `parallel`: split over OpenMP threads
// (false inside a caller's own parallel region).
template <class T, class Rows = PlainRows>
void im2col(const Conv2dShape& s, const T* x, int64_t images, T* col, int64_t ld, bool parallel,
            Rows rows_ops = {}) {
  const int64_t hw = s.out_pixels(), cols = ld, in_plane = s.h_in * s.w_in;
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
              rows_ops.copy(out + span.begin, row + span.begin + shift, span.end - span.begin);
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
template <class T, class Rows = PlainRows>
void col2im(const Conv2dShape& s, const T* col, int64_t images, int64_t ld, T* dx, GradMode mode,
            bool parallel, Rows rows_ops = {}) {
  const int64_t hw = s.out_pixels(), cols = ld, in_plane = s.h_in * s.w_in;
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
            if (s.stride_w == 1) {
              rows_ops.add(row + span.begin + shift, in + span.begin, span.end - span.begin);
            } else {
              for (int64_t ow = span.begin; ow < span.end; ++ow)
                row[ow * s.stride_w + shift] += in[ow];
            }
          }
        }
      }
    }
  }
}

// mat (C_out, images * HW, row stride ld) <- dy images [n0, n0 + images) of (N, C_out, HW).
template <class T>
void gather_chunk(const Conv2dShape& s, const T* dy, int64_t n0, int64_t images, T* mat,
                  int64_t ld, bool parallel) {
  const int64_t hw = s.out_pixels(), cols = ld;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t co = 0; co < s.c_out; ++co) {
    for (int64_t img = 0; img < images; ++img) {
      const T* src = dy + ((n0 + img) * s.c_out + co) * hw;
      std::copy(src, src + hw, mat + co * cols + img * hw);
    }
  }
}

// y images [n0, n0 + images) of (N, C_out, HW) <- mat (C_out, images * HW, row stride ld) + b,
// then ReLU (written v < 0 ? 0 : v, so NaN stays NaN) when `relu`.
template <class T>
void scatter_chunk(const Conv2dShape& s, const T* mat, const T* b, int64_t n0, int64_t images,
                   T* y, int64_t ld, bool relu, bool parallel) {
  const int64_t hw = s.out_pixels(), cols = ld;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t img = 0; img < images; ++img) {
    for (int64_t co = 0; co < s.c_out; ++co) {
      const T* src = mat + co * cols + img * hw;
      T* dst = y + ((n0 + img) * s.c_out + co) * hw;
      const T bias = b ? b[co] : T(0);
      if (relu) {
        for (int64_t p = 0; p < hw; ++p) {
          const T v = src[p] + bias;
          dst[p] = v < T(0) ? T(0) : v;
        }
      } else {
        for (int64_t p = 0; p < hw; ++p) dst[p] = src[p] + bias;
      }
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

}  // namespace polytask::kernels::cpu::conv2d_parts
