// polytask's own float GEMM for the CPU: packed panels, register-blocked micro-kernels
// (kernels/cpu/microkernels.h) in one variant per instruction set, chosen at run time
// (kernels/cpu/isa.h). gemm<float> (kernels/gemm.h), the dense layer and the convolution use
// it; OpenBLAS stays the double-precision reference and a benchmark baseline.
//
// Deterministic: every element of C is summed by one thread in an order fixed by the shape and
// the micro-kernel variant, so results do not depend on the thread count. Different variants
// (vector widths, FMA or not) round differently.
#pragma once

#include <cstdint>

#include "kernels/batchnorm.h"
#include "kernels/cpu/isa.h"
#include "kernels/grad_mode.h"
#include "kernels/gemm.h"

namespace polytask::kernels::cpu {

// A gather kernel and its tile: C (mr x nr) = / += Σ_k a_rows[i][k_off[k]] · b[k*ldb + j]
// (microkernels.h gather_tile). C and B rows must hold nr whole columns.
struct GatherKernel {
  int mr, nr;
  void (*tile)(int64_t kc, const float* const* a_rows, const int64_t* k_off, const float* b,
               int64_t ldb, float* c, int64_t ldc, bool accumulate);
};

// BatchNorm on one float channel (batchnorm_channels.h; kernels/batchnorm.h's contracts).
struct BatchNormKernels {
  void (*forward_train)(const BatchNormShape& s, int64_t ch, const float* x, const float* gamma,
                        const float* beta, float eps, float momentum, float* y, float* save_mean,
                        float* save_invstd, float* running_mean, float* running_var);
  void (*forward_infer)(const BatchNormShape& s, int64_t ch, const float* x, const float* gamma,
                        const float* beta, const float* running_mean, const float* running_var,
                        float eps, float* y);
  void (*backward)(const BatchNormShape& s, int64_t ch, const float* x, const float* dy,
                   const float* gamma, const float* save_mean, const float* save_invstd,
                   float* dx, float* dgamma, float* dbeta, GradMode mode);
};

// One instruction set's micro-kernels and their tile sizes (see microkernels.h).
struct MicroKernels {
  CpuIsa isa;
  int mr, nr;          // nn tile: C rows x C columns
  int dot_mr, dot_nr;  // nt tile
  int lanes;           // floats per vector
  // C[i*ldc + j] (i < mr, j < nr) = alpha·Σ_k a[k*mr + i]·b[k*ldb + j] + beta·C (beta 0: C is
  // not read); a is a packed panel, b is read in place.
  void (*nn)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
             float alpha, float beta);
  // C[i*ldc + j] (i < m_valid <= dot_mr, j < n_valid <= dot_nr) =
  //   alpha·Σ_{k<kc} a_rows[i][k]·b_rows[j][k] + beta·C; all dot_mr/dot_nr rows are read.
  void (*nt)(int64_t kc, const float* const* a_rows, const float* const* b_rows, float* c,
             int64_t ldc, int m_valid, int n_valid, float alpha, float beta);
  // dst[i] = src[i], dst[i] += src[i] for i < n (short rows: im2col and col2im).
  void (*copy_row)(float* dst, const float* src, int64_t n);
  void (*add_row)(float* dst, const float* src, int64_t n);
  // 24 independent FMA chains of `iterations` rounds (2 * lanes * 24 FLOP each): the peak probe.
  float (*fma_probe)(int64_t iterations);
  // Gather tiles for wide (e.g. 64-channel) and narrow (<= narrow.nr channel) outputs.
  GatherKernel gather_wide, gather_narrow;
  // The 2x2 / stride-2 max pool of one plane (pool_rows.h), for planes with w_out >= 4.
  void (*max_pool_2x2_forward)(int64_t h_out, int64_t w_out, int64_t w_in, const float* x,
                               float* y, int32_t* argmax);
  void (*max_pool_2x2_backward)(int64_t h_in, int64_t w_in, int64_t h_out, int64_t w_out,
                                const float* dy, const int32_t* argmax, const float* relu_y,
                                float* dx, bool accumulate);
  BatchNormKernels batchnorm;
  const GatherKernel& gather_for(int64_t columns) const {
    return columns <= gather_narrow.nr ? gather_narrow : gather_wide;
  }
};

// This machine's measured float FMA peak on `uk`, in FLOP/s, with `threads` threads probing at
// once (each for about `seconds`): what a GEMM could reach, for benchmark tables.
double measured_peak_flops(const MicroKernels& uk, int threads, double seconds = 0.2);

// The variant for `isa`; throws polytask::Error if this CPU cannot run it.
const MicroKernels& micro_kernels(CpuIsa isa);
// The variant active_isa() names.
const MicroKernels& active_micro_kernels();

// How the nn kernels see A: `rows` rows (the rows of C) in panels of `r`, zero-padded to
// rows_padded, and k cut into blocks of at most 256 so that the B rows one tile reads stay in
// the L1 cache. Block [k0, k0 + kc) starts at k0 * rows_padded; panel p of it at
// p * r * kc; element (row p*r + i, k0 + k) at k * r + i.
struct PackedLayout {
  int64_t rows = 0, rows_padded = 0, k = 0;
  int r = 1;
  int64_t kc_max = 1;  // blocks are [b * kc_max, min(k, (b + 1) * kc_max))
  int64_t elements() const { return rows_padded * k; }
  int64_t block_offset(int64_t k0) const { return k0 * rows_padded; }
  int64_t kc(int64_t k0) const { return k0 + kc_max < k ? kc_max : k - k0; }
};
PackedLayout packed_layout(int64_t rows, int64_t k, int r);

// Packs rows x k of an operand into `layout` order; get(row, k) reads one element.
template <class Get>
void pack_operand(const PackedLayout& layout, Get get, float* dst) {
  for (int64_t k0 = 0; k0 < layout.k; k0 += layout.kc_max) {
    const int64_t kc = layout.kc(k0);
    float* block = dst + layout.block_offset(k0);
    for (int64_t p0 = 0; p0 < layout.rows_padded; p0 += layout.r) {
      float* panel = block + p0 * kc;
      const int64_t valid = layout.rows - p0 < layout.r ? layout.rows - p0 : layout.r;
      for (int64_t k = 0; k < kc; ++k) {
        float* out = panel + k * layout.r;
        for (int64_t i = 0; i < valid; ++i) out[i] = get(p0 + i, k0 + k);
        for (int64_t i = valid; i < layout.r; ++i) out[i] = 0.0f;
      }
    }
  }
}

// C (a.rows x n, row stride ldc) = alpha·A·B + beta·C from a packed A and B (a.k x n, row
// stride ldb) read in place (one thread). Keep ldb away from multiples of 256 floats, whose
// rows collide in the L1 cache's sets (column_stride() picks such a stride).
void gemm_nn(const MicroKernels& uk, const PackedLayout& a, const float* a_packed, int64_t n,
             const float* b, int64_t ldb, float alpha, float beta, float* c, int64_t ldc);

// A row stride for a scratch matrix of `columns` floats per row: whole 64-byte lines, an odd
// number of them so that successive rows fall into different L1 sets.
int64_t column_stride(int64_t columns);

// C (m x n) = alpha·A·Bᵀ + beta·C with A (m x k, row stride lda) and B (n x k, ldb) read in
// place (one thread).
void gemm_nt(const MicroKernels& uk, int64_t m, int64_t n, int64_t k, float alpha,
             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
             int64_t ldc);

// C (rows x round_up(cols, g.nr), row stride ldc) = / += A·B with A gathered: row i's element
// k at row_ptrs[i] + k_off[k] (k < kdim), B (kdim x round_up(cols, g.nr), row stride ldb, zero
// past cols). C must have round_up(rows, g.mr) rows: an edge tile writes whole tiles (rows past
// `rows` repeat the last row's pointer). One thread; k in blocks that keep B's rows in L1.
void gather_gemm(const GatherKernel& g, int64_t rows, const float* const* row_ptrs, int64_t kdim,
                 const int64_t* k_off, const float* b, int64_t ldb, int64_t cols, float* c,
                 int64_t ldc, bool accumulate);

// gemm<float>'s contract (kernels/gemm.h) on `uk`, split over OpenMP threads by blocks of C.
void sgemm(const MicroKernels& uk, Transpose trans_a, Transpose trans_b, int64_t m, int64_t n,
           int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
           float beta, float* c, int64_t ldc);

// A per-thread, 64-byte-aligned buffer of at least `elements` floats that lives until the
// thread ends; `slot` tells apart the buffers one kernel needs at once (0..7). Grows, never
// shrinks; the contents are not kept across a growth.
float* thread_scratch(int slot, int64_t elements);

}  // namespace polytask::kernels::cpu
