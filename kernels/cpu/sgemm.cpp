#include "kernels/cpu/sgemm.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>

#include "kernels/error.h"

namespace polytask::kernels::cpu {

// Defined in microkernels_<isa>.cpp, each compiled for its instruction set.
const MicroKernels& generic_micro_kernels();
const MicroKernels& avx2_micro_kernels();
const MicroKernels& avx512_micro_kernels();

namespace {

// k per block of the nn kernels: an AVX-512 B panel of 256 x 32 floats is 32 KiB, which stays
// in a 48 KiB L1 beside the A panel it meets. Blocks are evened out (288 -> 144 + 144).
constexpr int64_t kMaxPackedKc = 256;
// k per block of the nt kernels: the tile's A rows (4 x 1024 floats, 16 KiB) stay in L1 while
// the B rows stream past them.
constexpr int64_t kMaxDotKc = 1024;
// k per block of the gather kernels: 128 rows of a 64-wide B are 32 KiB, kept in L1 while
// every output tile of the block passes over them.
constexpr int64_t kMaxGatherKc = 128;
// Shortest k for which sgemm takes the dot kernels for A·Bᵀ (see sgemm).
constexpr int64_t kDotMinK = 4096;
// Below this many multiply-adds a GEMM runs on one thread: waking a team costs microseconds.
constexpr double kParallelMultiplyAdds = 1 << 18;

int64_t even_block(int64_t k, int64_t most) {
  if (k <= most) return std::max<int64_t>(k, 1);
  const int64_t blocks = (k + most - 1) / most;
  return (k + blocks - 1) / blocks;
}

int64_t round_up(int64_t x, int64_t unit) { return (x + unit - 1) / unit * unit; }

// C = beta·C for the products that are empty (k == 0) or scaled away (alpha == 0).
void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// One thread's block of C = alpha·op(A)·op(B) + beta·C through the nn kernel: A packed, B in
// place when it is stored k-major (op(B) = B), else transposed into scratch first.
void gemm_block_nn(const MicroKernels& uk, Transpose trans_a, Transpose trans_b, int64_t m,
                   int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const PackedLayout la = packed_layout(m, k, uk.mr);
  float* pa = thread_scratch(0, la.elements());
  if (trans_a == Transpose::No)
    pack_operand(la, [&](int64_t i, int64_t kk) { return a[i * lda + kk]; }, pa);
  else
    pack_operand(la, [&](int64_t i, int64_t kk) { return a[kk * lda + i]; }, pa);
  if (trans_b == Transpose::Yes) {
    const int64_t ld = column_stride(n);
    float* bt = thread_scratch(1, k * ld);
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t j = 0; j < n; ++j) bt[kk * ld + j] = b[j * ldb + kk];
    b = bt;
    ldb = ld;
  }
  gemm_nn(uk, la, pa, n, b, ldb, alpha, beta, c, ldc);
}

}  // namespace

const MicroKernels& micro_kernels(CpuIsa isa) {
  if (!cpu_supports(isa)) fail("CPU kernels: this CPU cannot run the ", isa_name(isa), " variant");
  switch (isa) {
    case CpuIsa::Generic: return generic_micro_kernels();
    case CpuIsa::Avx2: return avx2_micro_kernels();
    case CpuIsa::Avx512: return avx512_micro_kernels();
  }
  fail("CPU kernels: unknown instruction set");
}

const MicroKernels& active_micro_kernels() {
  static const MicroKernels& kernels = micro_kernels(active_isa());
  return kernels;
}

PackedLayout packed_layout(int64_t rows, int64_t k, int r) {
  PackedLayout l;
  l.rows = rows;
  l.rows_padded = round_up(rows, r);
  l.k = k;
  l.r = r;
  l.kc_max = even_block(k, kMaxPackedKc);
  return l;
}

void gemm_nn(const MicroKernels& uk, const PackedLayout& a, const float* a_packed, int64_t n,
             const float* b, int64_t ldb, float alpha, float beta, float* c, int64_t ldc) {
  alignas(64) float tile[16 * 64];  // an edge tile, computed whole and copied in part
  // The last, partial column panel of B, zero-padded so the kernel never reads past a row.
  float* edge = thread_scratch(7, a.kc_max * uk.nr);
  for (int64_t k0 = 0; k0 < a.k; k0 += a.kc_max) {
    const int64_t kc = a.kc(k0);
    const float beta_k = k0 == 0 ? beta : 1.0f;
    const float* pa = a_packed + a.block_offset(k0);
    for (int64_t n0 = 0; n0 < n; n0 += uk.nr) {
      const int64_t nv = std::min<int64_t>(uk.nr, n - n0);
      const float* bp = b + k0 * ldb + n0;
      int64_t bld = ldb;
      if (nv < uk.nr) {
        for (int64_t kk = 0; kk < kc; ++kk) {
          std::copy_n(bp + kk * ldb, nv, edge + kk * uk.nr);
          std::fill_n(edge + kk * uk.nr + nv, uk.nr - nv, 0.0f);
        }
        bp = edge;
        bld = uk.nr;
      }
      for (int64_t m0 = 0; m0 < a.rows; m0 += uk.mr) {
        const float* ap = pa + m0 * kc;
        const int64_t mv = std::min<int64_t>(uk.mr, a.rows - m0);
        float* cp = c + m0 * ldc + n0;
        if (mv == uk.mr && nv == uk.nr) {
          uk.nn(kc, ap, bp, bld, cp, ldc, alpha, beta_k);
          continue;
        }
        uk.nn(kc, ap, bp, bld, tile, uk.nr, alpha, 0.0f);
        for (int64_t i = 0; i < mv; ++i)
          for (int64_t j = 0; j < nv; ++j) {
            float& out = cp[i * ldc + j];
            out = beta_k == 0.0f ? tile[i * uk.nr + j] : tile[i * uk.nr + j] + beta_k * out;
          }
      }
    }
  }
}

void gather_gemm(const GatherKernel& g, int64_t rows, const float* const* row_ptrs, int64_t kdim,
                 const int64_t* k_off, const float* b, int64_t ldb, int64_t cols, float* c,
                 int64_t ldc, bool accumulate) {
  const float* tile_rows[16];
  const int64_t kc_max = even_block(kdim, kMaxGatherKc);
  for (int64_t k0 = 0; k0 < kdim; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, kdim - k0);
    const bool add = accumulate || k0 > 0;
    for (int64_t j0 = 0; j0 < cols; j0 += g.nr) {
      for (int64_t i0 = 0; i0 < rows; i0 += g.mr) {
        for (int i = 0; i < g.mr; ++i) tile_rows[i] = row_ptrs[std::min(i0 + i, rows - 1)];
        g.tile(kc, tile_rows, k_off + k0, b + k0 * ldb + j0, ldb, c + i0 * ldc + j0, ldc, add);
      }
    }
  }
}

int64_t column_stride(int64_t columns) {
  const int64_t lines = std::max<int64_t>(1, (columns + 15) / 16);
  return (lines % 2 == 0 ? lines + 1 : lines) * 16;
}

void gemm_nt(const MicroKernels& uk, int64_t m, int64_t n, int64_t k, float alpha,
             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
             int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) return scale_c(m, n, beta, c, ldc);
  const float* a_rows[16];
  const float* b_rows[16];
  const int64_t kc_max = even_block(k, kMaxDotKc);
  for (int64_t k0 = 0; k0 < k; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, k - k0);
    const float beta_k = k0 == 0 ? beta : 1.0f;
    for (int64_t i0 = 0; i0 < m; i0 += uk.dot_mr) {
      const int mv = int(std::min<int64_t>(uk.dot_mr, m - i0));
      // Rows past the edge repeat the last one: read, never stored.
      for (int i = 0; i < uk.dot_mr; ++i) a_rows[i] = a + (i0 + std::min(i, mv - 1)) * lda + k0;
      for (int64_t j0 = 0; j0 < n; j0 += uk.dot_nr) {
        const int nv = int(std::min<int64_t>(uk.dot_nr, n - j0));
        for (int j = 0; j < uk.dot_nr; ++j)
          b_rows[j] = b + (j0 + std::min(j, nv - 1)) * ldb + k0;
        uk.nt(kc, a_rows, b_rows, c + i0 * ldc + j0, ldc, mv, nv, alpha, beta_k);
      }
    }
  }
}

void sgemm(const MicroKernels& uk, Transpose trans_a, Transpose trans_b, int64_t m, int64_t n,
           int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
           float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) return scale_c(m, n, beta, c, ldc);
  // A·Bᵀ: the dot kernels read both operands in place but reduce across lanes once per tile;
  // below kDotMinK transposing B into scratch for the nn kernels is faster (the dense
  // forward, k = 1600: 593 vs 717 µs on one AVX-512 core).
  const bool dot = trans_a == Transpose::No && trans_b == Transpose::Yes && k > kDotMinK;
  const int64_t row_unit = dot ? uk.dot_mr : uk.mr, col_unit = dot ? uk.dot_nr : uk.nr;
  const int64_t row_tiles = (m + row_unit - 1) / row_unit, col_tiles = (n + col_unit - 1) / col_unit;
  const bool small = double(m) * double(n) * double(k) < kParallelMultiplyAdds;
  const int threads = small ? 1 : std::max(1, omp_get_max_threads());
  // Split C along whichever side has more tiles; each thread owns whole tiles, so its
  // elements are summed exactly as a single thread would (results independent of threads).
  const bool split_columns = col_tiles >= row_tiles;
  const int64_t tiles = split_columns ? col_tiles : row_tiles;
  const int64_t unit = split_columns ? col_unit : row_unit;
#pragma omp parallel num_threads(int(std::min<int64_t>(threads, tiles)))
  {
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t first = tiles * t / team * unit, last = tiles * (t + 1) / team * unit;
    const int64_t side = split_columns ? n : m;
    const int64_t begin = std::min(first, side), end = std::min(last, side);
    if (begin < end) {
      const int64_t mb = split_columns ? m : end - begin, nb = split_columns ? end - begin : n;
      const int64_t row0 = split_columns ? 0 : begin, col0 = split_columns ? begin : 0;
      const float* ab = trans_a == Transpose::No ? a + row0 * lda : a + row0;
      const float* bb = trans_b == Transpose::No ? b + col0 : b + col0 * ldb;
      float* cb = c + row0 * ldc + col0;
      if (dot)
        gemm_nt(uk, mb, nb, k, alpha, ab, lda, bb, ldb, beta, cb, ldc);
      else
        gemm_block_nn(uk, trans_a, trans_b, mb, nb, k, alpha, ab, lda, bb, ldb, beta, cb, ldc);
    }
  }
}

double measured_peak_flops(const MicroKernels& uk, int threads, double seconds) {
  using Clock = std::chrono::steady_clock;
  // Calibrate the round count on one thread, then time every thread at once.
  int64_t iterations = 1 << 16;
  for (;;) {
    const auto start = Clock::now();
    volatile float sink = uk.fma_probe(iterations);
    (void)sink;
    if (std::chrono::duration<double>(Clock::now() - start).count() > seconds / 4) break;
    iterations *= 2;
  }
  iterations *= 4;
  // The best of three probes: a probe that shares its core with anything (a VM neighbour, a
  // thread still starting) only reads low, never high.
  double best = 0;
  for (int probe = 0; probe < 3; ++probe) {
    double slowest = 0;
#pragma omp parallel num_threads(threads) reduction(max : slowest)
    {
      const auto start = Clock::now();
      volatile float sink = uk.fma_probe(iterations);
      (void)sink;
      slowest = std::chrono::duration<double>(Clock::now() - start).count();
    }
    best = std::max(best, double(threads) * double(iterations) * 24.0 * 2.0 * uk.lanes / slowest);
  }
  return best;
}

float* thread_scratch(int slot, int64_t elements) {
  struct Buffer {
    std::unique_ptr<float[], decltype(&std::free)> data{nullptr, &std::free};
    int64_t size = 0;
  };
  thread_local Buffer buffers[8];
  if (slot < 0 || slot >= 8) fail("thread_scratch: slot ", slot, " out of range 0..7");
  Buffer& buffer = buffers[slot];
  if (buffer.size < elements) {
    const int64_t size = std::max(elements, buffer.size + buffer.size / 2);
    const auto bytes = static_cast<size_t>(round_up(size * int64_t(sizeof(float)), 64));
    auto* memory = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (memory == nullptr) fail("CPU kernels: out of memory for ", bytes, " bytes of scratch");
    buffer.data.reset(memory);
    buffer.size = size;
  }
  return buffer.data.get();
}

}  // namespace polytask::kernels::cpu
