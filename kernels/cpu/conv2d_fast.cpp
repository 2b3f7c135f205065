// The float convolution: the threads take the batch's images in blocks as they free up, and run
// them through their own buffers and polytask's micro-kernels (kernels/cpu/sgemm.h):
//   forward        mat (C_out, cols) = W (packed once) · col, scattered into y with bias, ReLU;
//   backward-data  dcol (patch, cols) = Wᵀ (packed once) · dy chunk, then col2im into dx;
//   backward-filter  [dW_t db_t] (C_out, patch + 1) += dy chunk · [col; 1]ᵀ as row dot
//                  products (the pixels are the contiguous axis of both), one partial per
//                  block of images, summed in block order at the end.
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
// One image's dy is already C_out rows of its pixels, hw apart: when those rows are this long,
// the filter gradient reads them in place, image by image, rather than gathering images into
// chunks first (a copy of all of dy: 11 MB for the first layer at batch 128, where this
// measured 1.2 -> 0.65 ms).
constexpr int64_t kInPlaceDyPixels = 256;

// Scratch slots (thread_scratch): 0, 1 and 7 belong to the GEMM drivers.
enum Slot { kPackedWeights = 2, kCol = 3, kMat = 4, kPartial = 5, kOnes = 6 };

// The direct path pays a transpose of each image's output (or dy) to win back the im2col copy:
// worth it once a window holds this many taps (the first layer, C_in = 1, 3x3, is not) and the
// channels it vectorises over fill at least half of a tile's vectors (backward-data into one
// input channel would compute 32 lanes to keep 1).
constexpr int64_t kDirectMinDepth = 32;

bool choose_direct(const MicroKernels& uk, ConvPath path, int64_t depth, int64_t channels) {
  if (path != ConvPath::Auto) return path == ConvPath::Direct;
  return depth >= kDirectMinDepth && 2 * channels >= uk.gather_narrow.nr;
}

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

// Work goes out in blocks of images as threads free up (an OpenMP dynamic schedule), not in
// equal shares fixed up front: on a shared machine one core can run slower for a while (a busy
// hyperthread sibling, the host's other guests), and with fixed shares the whole team waits for
// it at the end of every layer. Results do not depend on which thread takes a block.

// Images [first, last) of block b of `blocks`.
struct Range {
  int64_t first, last;
};
Range block_images(int64_t n, int64_t b, int64_t blocks) { return {n * b / blocks, n * (b + 1) / blocks}; }

// The filter gradient keeps one partial sum per block and adds them in block order: a fixed
// number of blocks, so the order of the additions, and the bits of the result, depend on the
// batch alone, not on the thread count or on which thread ran what.
constexpr int64_t kFilterBlocks = 16;
// Images per block of the direct forward and backward-data passes (about 20 µs each for the
// workload's second layer: a block is far longer than handing it out).
constexpr int64_t kImagesPerBlock = 2;
int64_t filter_blocks(int64_t n) { return std::clamp<int64_t>(n, 1, kFilterBlocks); }

// The partials, one per block, `size` floats apart, in the calling thread's scratch (the
// team's threads each fill their blocks').
std::vector<float*> block_partials(int64_t blocks, int64_t size) {
  float* all = thread_scratch(kPartial, blocks * size);
  std::vector<float*> partials(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) partials[size_t(b)] = all + b * size;
  return partials;
}

// dw[co, k] (k < patch) and db[co] (k == patch) = the blocks' partial sums at at(co, k), added
// in block order into the first partial (`size` floats each, read contiguously), stored per
// `mode`.
template <class At>
void store_filter_sums(const Conv2dShape& s, const std::vector<float*>& partials, int64_t size,
                       At at, float* dw, float* db, GradMode mode) {
  const int64_t patch = s.patch_size();
  float* sum = partials[0];
  for (size_t b = 1; b < partials.size(); ++b) {
    const float* partial = partials[b];
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) sum[i] += partial[i];
  }
  for (int64_t co = 0; co < s.c_out; ++co) {
    for (int64_t k = 0; k < patch; ++k) store_grad(mode, dw[co * patch + k], sum[at(co, k)]);
    if (db) store_grad(mode, db[co], sum[at(co, patch)]);
  }
}

// Calls body(n0, images, ld) for each chunk of the images of r; ld is the row stride of the
// chunk's col and mat (column_stride of the largest chunk).
template <class Body>
void for_each_chunk(const Conv2dShape& s, Range r, int64_t column_elements, Body body) {
  const int64_t chunk = chunk_images(s, column_elements);
  const int64_t ld = column_stride(chunk * s.out_pixels());
  for (int64_t n0 = r.first; n0 < r.last; n0 += chunk) body(n0, std::min(chunk, r.last - n0), ld);
}

// Inside a parallel region: body(images) for each block of `per_block` images (the last may be
// shorter), the blocks handed out dynamically to the team.
template <class Body>
void for_image_blocks(int64_t n, int64_t per_block, Body body) {
  const int64_t blocks = (n + per_block - 1) / per_block;
#pragma omp for schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; ++b) body(Range{b * per_block, std::min(n, (b + 1) * per_block)});
}

// Inside a parallel region: body(n0, images, ld) for every chunk of the batch (for_each_chunk's),
// each chunk a block handed out dynamically.
template <class Body>
void for_chunks(const Conv2dShape& s, int64_t column_elements, Body body) {
  for_image_blocks(s.n, chunk_images(s, column_elements),
                   [&](Range r) { for_each_chunk(s, r, column_elements, body); });
}

void forward_im2col(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                    const float* w, const float* b, float* y, bool relu) {
  if (s.n <= 0) return;
  const int64_t patch = s.patch_size(), hw = s.out_pixels(), in_image = s.c_in * s.h_in * s.w_in;
  const PackedLayout la = packed_layout(s.c_out, patch, uk.mr);
  float* packed_w = thread_scratch(kPackedWeights, la.elements());
  pack_operand(la, [&](int64_t co, int64_t k) { return w[co * patch + k]; }, packed_w);
  const int team = team_size(s);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    for_chunks(s, kChunkColumnElements, [&](int64_t n0, int64_t images, int64_t ld) {
      float* col = thread_scratch(kCol, patch * ld);
      float* mat = thread_scratch(kMat, s.c_out * ld);
      im2col(s, x + n0 * in_image, images, col, ld, false, VectorRows{&uk});
      gemm_nn(uk, la, packed_w, images * hw, col, ld, 1.0f, 0.0f, mat, ld);
      scatter_chunk(s, mat, b, n0, images, y, ld, relu, false);
    });
  }
}

void backward_data_im2col(const MicroKernels& uk, const Conv2dShape& s, const float* dy,
                          const float* w, float* dx, GradMode mode) {
  if (s.n <= 0) return;
  const int64_t patch = s.patch_size(), hw = s.out_pixels(), in_image = s.c_in * s.h_in * s.w_in;
  const PackedLayout la = packed_layout(patch, s.c_out, uk.mr);
  float* packed_wt = thread_scratch(kPackedWeights, la.elements());
  pack_operand(la, [&](int64_t k, int64_t co) { return w[co * patch + k]; }, packed_wt);
  const int team = team_size(s);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    for_chunks(s, kChunkColumnElements, [&](int64_t n0, int64_t images, int64_t ld) {
      float* dcol = thread_scratch(kCol, patch * ld);
      float* mat = thread_scratch(kMat, s.c_out * ld);
      gather_chunk(s, dy, n0, images, mat, ld, false);
      gemm_nn(uk, la, packed_wt, images * hw, mat, ld, 1.0f, 0.0f, dcol, ld);
      col2im(s, dcol, images, ld, dx + n0 * in_image, mode, false, VectorRows{&uk});
    });
  }
}

void backward_filter_im2col(const MicroKernels& uk, const Conv2dShape& s, const float* x,
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
  const int64_t blocks = filter_blocks(s.n);
  const std::vector<float*> partials = block_partials(blocks, s.c_out * wide);
#pragma omp parallel num_threads(team) if (team > 1)
#pragma omp for schedule(dynamic, 1)
  for (int64_t block = 0; block < blocks; ++block) {
    const Range r = block_images(s.n, block, blocks);
    float* partial = partials[size_t(block)];
    std::fill_n(partial, s.c_out * wide, 0.0f);
    if (hw >= kInPlaceDyPixels) {
      const int64_t ld = column_stride(hw);
      float* col = thread_scratch(kCol, wide * ld);
      std::fill_n(col + patch * ld, hw, 1.0f);  // im2col leaves this row alone
      for (int64_t img = r.first; img < r.last; ++img) {
        im2col(s, x + img * in_image, 1, col, ld, false, VectorRows{&uk});
        // partial (C_out, patch + 1) += dy image (C_out, hw) · [col; 1]ᵀ (hw, patch + 1)
        gemm_nt(uk, s.c_out, wide, hw, 1.0f, dy + img * s.c_out * hw, hw, col, ld, 1.0f,
                partial, wide);
      }
    } else {
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
  }
  store_filter_sums(s, partials, s.c_out * wide,
                    [wide](int64_t co, int64_t k) { return co * wide + k; }, dw, db, mode);
}

// ---- the direct path: the gather kernels read the activations where they lie -------------

int64_t round_up(int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; }

// A per-thread array of `n` row pointers for gather_gemm.
const float** pointer_scratch(int64_t n) {
  thread_local std::vector<const float*> pointers;
  if (int64_t(pointers.size()) < n) pointers.resize(size_t(n));
  return pointers.data();
}

// The input planes as the direct kernels read them: x itself when every window lies inside the
// image (no padding), else a zero-padded copy, hp x wp per channel, made per image.
struct Planes {
  int64_t hp = 0, wp = 0;
  bool copy = false;
  int64_t plane() const { return hp * wp; }
};

Planes input_planes(const Conv2dShape& s) {
  const int64_t rows = (s.h_out - 1) * s.stride_h + s.k_h, cols = (s.w_out - 1) * s.stride_w + s.k_w;
  if (s.pad_top == 0 && s.pad_left == 0 && rows <= s.h_in && cols <= s.w_in)
    return {s.h_in, s.w_in, false};
  return {rows, cols, true};
}

const float* planes_of(const Conv2dShape& s, const Planes& p, const float* x_image,
                       float* buffer) {
  if (!p.copy) return x_image;
  std::fill_n(buffer, s.c_in * p.plane(), 0.0f);
  for (int64_t c = 0; c < s.c_in; ++c)
    for (int64_t r = 0; r < s.h_in && r + s.pad_top < p.hp; ++r) {
      const int64_t width = std::min(s.w_in, p.wp - s.pad_left);
      std::copy_n(x_image + (c * s.h_in + r) * s.w_in, width,
                  buffer + c * p.plane() + (r + s.pad_top) * p.wp + s.pad_left);
    }
  return buffer;
}

// Offsets in the planes: of each output pixel's window corner, and of each tap (c, ki, kj).
std::vector<int64_t> pixel_offsets(const Conv2dShape& s, int64_t wp) {
  std::vector<int64_t> out(static_cast<size_t>(s.out_pixels()));
  for (int64_t oh = 0; oh < s.h_out; ++oh)
    for (int64_t ow = 0; ow < s.w_out; ++ow)
      out[size_t(oh * s.w_out + ow)] = oh * s.stride_h * wp + ow * s.stride_w;
  return out;
}
std::vector<int64_t> tap_offsets(const Conv2dShape& s, int64_t hp, int64_t wp) {
  std::vector<int64_t> out(static_cast<size_t>(s.patch_size()));
  for (int64_t c = 0; c < s.c_in; ++c)
    for (int64_t ki = 0; ki < s.k_h; ++ki)
      for (int64_t kj = 0; kj < s.k_w; ++kj)
        out[size_t((c * s.k_h + ki) * s.k_w + kj)] = c * hp * wp + ki * wp + kj;
  return out;
}

// y[img, co, p] = C[p, co] + b[co] (ReLU'd): the gather's pixel-major result back to NCHW.
void write_output(const Conv2dShape& s, const float* c, int64_t ldc, const float* b, bool relu,
                  float* y_image) {
  const int64_t hw = s.out_pixels();
  for (int64_t co = 0; co < s.c_out; ++co) {
    const float bias = b ? b[co] : 0.0f;
    float* out = y_image + co * hw;
    for (int64_t p = 0; p < hw; ++p) {
      const float v = c[p * ldc + co] + bias;
      out[p] = relu && v < 0.0f ? 0.0f : v;
    }
  }
}

void forward_direct(const MicroKernels& uk, const Conv2dShape& s, const float* x, const float* w,
                    const float* b, float* y, bool relu) {
  const GatherKernel& g = uk.gather_for(s.c_out);
  const int64_t patch = s.patch_size(), hw = s.out_pixels(), co_pad = round_up(s.c_out, g.nr);
  const int64_t in_image = s.c_in * s.h_in * s.w_in;
  const Planes planes = input_planes(s);
  const auto taps = tap_offsets(s, planes.hp, planes.wp);
  const auto pixels = pixel_offsets(s, planes.wp);
  // B: the weights tap-major, wt[k][co], zero past C_out.
  float* wt = thread_scratch(kPackedWeights, patch * co_pad);
  for (int64_t k = 0; k < patch; ++k)
    for (int64_t co = 0; co < co_pad; ++co)
      wt[k * co_pad + co] = co < s.c_out ? w[co * patch + k] : 0.0f;
  const int team = team_size(s);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    float* c = thread_scratch(kMat, round_up(hw, g.mr) * co_pad);
    float* copy = planes.copy ? thread_scratch(kCol, s.c_in * planes.plane()) : nullptr;
    const float** rows = pointer_scratch(hw);
    for_image_blocks(s.n, kImagesPerBlock, [&](Range r) {
      for (int64_t img = r.first; img < r.last; ++img) {
        const float* src = planes_of(s, planes, x + img * in_image, copy);
        for (int64_t p = 0; p < hw; ++p) rows[p] = src + pixels[size_t(p)];
        gather_gemm(g, hw, rows, patch, taps.data(), wt, co_pad, s.c_out, c, co_pad, false);
        write_output(s, c, co_pad, b, relu, y + img * s.c_out * hw);
      }
    });
  }
}

// [dW db] from the gather: rows = the taps (one more: a row of ones, for db), k = the output
// pixels, B = dy transposed to pixel-major; per-thread partials summed in thread order.
void backward_filter_direct(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                            const float* dy, float* dw, float* db, GradMode mode) {
  const GatherKernel& g = uk.gather_for(s.c_out);
  const int64_t patch = s.patch_size(), hw = s.out_pixels(), co_pad = round_up(s.c_out, g.nr);
  const int64_t in_image = s.c_in * s.h_in * s.w_in, rows_total = patch + 1;
  const int64_t partial_size = round_up(rows_total, g.mr) * co_pad;
  const Planes planes = input_planes(s);
  const auto taps = tap_offsets(s, planes.hp, planes.wp);
  const auto pixels = pixel_offsets(s, planes.wp);
  const int team = team_size(s);
  const int64_t blocks = filter_blocks(s.n);
  const std::vector<float*> partials = block_partials(blocks, partial_size);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    float* dyt = thread_scratch(kMat, hw * co_pad);
    float* copy = planes.copy ? thread_scratch(kCol, s.c_in * planes.plane()) : nullptr;
    float* ones = thread_scratch(kOnes, planes.plane());
    std::fill_n(ones, planes.plane(), 1.0f);
    const float** rows = pointer_scratch(rows_total);
#pragma omp for schedule(dynamic, 1)
    for (int64_t block = 0; block < blocks; ++block) {
      const Range r = block_images(s.n, block, blocks);
      float* partial = partials[size_t(block)];
      if (r.first == r.last) std::fill_n(partial, partial_size, 0.0f);
      for (int64_t img = r.first; img < r.last; ++img) {
        const float* src = planes_of(s, planes, x + img * in_image, copy);
        for (int64_t k = 0; k < patch; ++k) rows[k] = src + taps[size_t(k)];
        rows[patch] = ones;
        const float* dy_image = dy + img * s.c_out * hw;
        for (int64_t p = 0; p < hw; ++p)
          for (int64_t co = 0; co < co_pad; ++co)
            dyt[p * co_pad + co] = co < s.c_out ? dy_image[co * hw + p] : 0.0f;
        gather_gemm(g, rows_total, rows, hw, pixels.data(), dyt, co_pad, s.c_out, partial,
                    co_pad, img != r.first);
      }
    }
  }
  store_filter_sums(s, partials, partial_size,
                    [co_pad](int64_t co, int64_t k) { return k * co_pad + co; }, dw, db, mode);
}

// Backward-data at stride 1 as a convolution of dy, zero-padded by K - 1 - pad, with the
// flipped filters: dx[c, i, j] = Σ_{co, ki, kj} dyp[co, i + K_h-1-ki, j + K_w-1-kj]·w[co, c, ki, kj].
bool backward_data_can_be_direct(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && s.pad_top <= s.k_h - 1 && s.pad_left <= s.k_w - 1;
}

void backward_data_direct(const MicroKernels& uk, const Conv2dShape& s, const float* dy,
                          const float* w, float* dx, GradMode mode) {
  const GatherKernel& g = uk.gather_for(s.c_in);
  const int64_t hq = s.h_in + s.k_h - 1, wq = s.w_in + s.k_w - 1, plane = hq * wq;
  const int64_t top = s.k_h - 1 - s.pad_top, left = s.k_w - 1 - s.pad_left;
  const int64_t depth = s.c_out * s.k_h * s.k_w, ci_pad = round_up(s.c_in, g.nr);
  const int64_t in_pixels = s.h_in * s.w_in, hw = s.out_pixels(), patch = s.patch_size();
  std::vector<int64_t> taps(static_cast<size_t>(depth)), pixels(static_cast<size_t>(in_pixels));
  float* wf = thread_scratch(kPackedWeights, depth * ci_pad);  // wf[(co, ki, kj)][c]
  for (int64_t co = 0; co < s.c_out; ++co)
    for (int64_t ki = 0; ki < s.k_h; ++ki)
      for (int64_t kj = 0; kj < s.k_w; ++kj) {
        const int64_t k = (co * s.k_h + ki) * s.k_w + kj;
        taps[size_t(k)] = co * plane + (s.k_h - 1 - ki) * wq + (s.k_w - 1 - kj);
        for (int64_t c = 0; c < ci_pad; ++c)
          wf[k * ci_pad + c] = c < s.c_in ? w[co * patch + (c * s.k_h + ki) * s.k_w + kj] : 0.0f;
      }
  for (int64_t i = 0; i < s.h_in; ++i)
    for (int64_t j = 0; j < s.w_in; ++j) pixels[size_t(i * s.w_in + j)] = i * wq + j;
  const int team = team_size(s);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    float* dyp = thread_scratch(kCol, s.c_out * plane);
    float* c = thread_scratch(kMat, round_up(in_pixels, g.mr) * ci_pad);
    const float** rows = pointer_scratch(in_pixels);
    for (int64_t p = 0; p < in_pixels; ++p) rows[p] = dyp + pixels[size_t(p)];
    std::fill_n(dyp, s.c_out * plane, 0.0f);  // the border stays zero; the inside is rewritten
    for_image_blocks(s.n, kImagesPerBlock, [&](Range r) {
      for (int64_t img = r.first; img < r.last; ++img) {
        const float* dy_image = dy + img * s.c_out * hw;
        for (int64_t co = 0; co < s.c_out; ++co)
          for (int64_t oh = 0; oh < s.h_out; ++oh)
            std::copy_n(dy_image + (co * s.h_out + oh) * s.w_out, s.w_out,
                        dyp + co * plane + (oh + top) * wq + left);
        gather_gemm(g, in_pixels, rows, depth, taps.data(), wf, ci_pad, s.c_in, c, ci_pad, false);
        float* dx_image = dx + img * s.c_in * in_pixels;
        for (int64_t ch = 0; ch < s.c_in; ++ch)
          for (int64_t p = 0; p < in_pixels; ++p)
            store_grad(mode, dx_image[ch * in_pixels + p], c[p * ci_pad + ch]);
      }
    });
  }
}

}  // namespace

void conv2d_forward_fast(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                         const float* w, const float* b, float* y, bool relu, ConvPath path) {
  if (s.n <= 0) return;
  if (choose_direct(uk, path, s.patch_size(), s.c_out))
    forward_direct(uk, s, x, w, b, y, relu);
  else
    forward_im2col(uk, s, x, w, b, y, relu);
}

void conv2d_backward_data_fast(const MicroKernels& uk, const Conv2dShape& s, const float* dy,
                               const float* w, float* dx, GradMode mode, ConvPath path) {
  if (s.n <= 0) return;
  if (backward_data_can_be_direct(s) &&
      choose_direct(uk, path, s.c_out * s.k_h * s.k_w, s.c_in))
    backward_data_direct(uk, s, dy, w, dx, mode);
  else
    backward_data_im2col(uk, s, dy, w, dx, mode);
}

void conv2d_backward_filter_fast(const MicroKernels& uk, const Conv2dShape& s, const float* x,
                                 const float* dy, float* dw, float* db, GradMode mode,
                                 ConvPath path) {
  if (s.n <= 0) {
    // An empty batch contributes nothing, but Overwrite still promises a written gradient.
    if (mode == GradMode::Overwrite) {
      std::fill_n(dw, s.c_out * s.patch_size(), 0.0f);
      if (db) std::fill_n(db, s.c_out, 0.0f);
    }
    return;
  }
  if (choose_direct(uk, path, s.patch_size(), s.c_out))
    backward_filter_direct(uk, s, x, dy, dw, db, mode);
  else
    backward_filter_im2col(uk, s, x, dy, dw, db, mode);
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
