// Convolution on the GPU: implicit GEMMs that gather input patches on the fly (no im2col
// buffer), with the register-blocked, double-buffered shared-memory tiling of the SGEMM in
// kernels/cuda/gemm.cu.
//
// The three products (rows x columns, summed over depth), with r(o, k) = o·s - pad + k:
//
//   forward          y[img, co, oh, ow] = sum over (ci, ki, kj) of
//                        x[img, ci, r(oh, ki), r(ow, kj)] · w[co, ci, ki, kj]
//   backward-data    dx[img, ci, ih, iw] = sum over (co, ki, kj) of
//                        dy[img, co, (ih + pad_top - ki)/s_h, (iw + pad_left - kj)/s_w]
//                        · w[co, ci, ki, kj]
//                    (the "gather" form: a term whose division is inexact or lands outside dy
//                    is 0)
//   backward-filter  dw[co, ci, ki, kj] = sum over (img, oh, ow) of
//                        dy[img, co, oh, ow] · x[img, ci, r(oh, ki), r(ow, kj)]
//                    plus one more column whose x is 1: its sums are db[co].
//
// Forward and backward-data are the same kernel (gather_gemm_kernel): the rows are the pixels
// of the tensor it writes (N·H·W of them: thousands to millions), the columns its channels (32
// or 64 in the workload) and the depth channels x taps of the tensor it reads (9 to 288). Why
// this orientation: the pixel dimension is the only large one, so it is the one spread over
// blocks; a block's columns cover all (or half) of the channels, so each gathered input element
// is reused BN times from shared memory, and each weight BM times.
//
// Backward-filter (filter_gemm_kernel) is the transposed shape: rows = c_out (32/64), columns =
// the patch (9 to 288, +1 for db) and depth = N·H_out·W_out pixels (86k to 1M at the workload's
// batches). So few output tiles exist that the depth is split: into chunks across blocks
// (partial sums in the workspace, then finish_filter_kernel adds them in chunk order), and, for
// the narrow tiles, across thread groups inside a block (added in group order). Fixed orders
// everywhere: bit-identical run to run, no atomics.
//
// Gathering. A GEMM row (a pixel) is decomposed once per thread (image, row, column -> where its
// window starts); a depth index k is decomposed into (channel, ki, kj) once per block and kept
// in a shared table of {channel offset, tap row, tap column, weight offset} entries, refilled
// every kTableRows of depth. Each gathered element then costs a table read (a broadcast), two
// adds, two unsigned bound checks and a predicated load; padding is the bound check failing.
// Integer division by run-time divisors uses multiply-high (FastDivmod).
//
// Work and traffic per call, with P = N·H_out·W_out, K = C_in·K_h·K_w:
//   forward          2·P·C_out·K FLOPs; at least 4·(|x| + |w| + |y|) bytes (+C_out for b)
//   backward-data    2·P·C_out·K FLOPs (the gather form runs C_out·K_h·K_w taps per input
//                    pixel, so 2·N·H·W·C_in·C_out·K_h·K_w issued, = 2·P·C_out·K at stride 1 and
//                    s_h·s_w times more at stride s); bytes 4·(|dy| + |w| + |dx|) (+|dx| read
//                    when accumulating)
//   backward-filter  2·P·C_out·(K + 1) FLOPs (the +1 is db); bytes 4·(|x| + |dy| + |dw|), plus
//                    2·4·chunks·C_out·(K + 1) for the partial sums when chunks > 1
// The workload shapes (H100 floors in bench/gpu/bench_gpu_conv.cpp):
//   28x28x1 -> 32, 3x3 valid   P = N·676,  K = 9:   0.39 MFLOP and 90 kB per image: memory-bound
//   13x13x32 -> 64, 3x3 valid  P = N·121,  K = 288: 4.46 MFLOP and 53 kB per image: compute
//   32x32x3 -> 32, 3x3 same    P = N·1024, K = 27:  1.77 MFLOP and 143 kB per image: memory
//   32x32x32 -> 32, 3x3 same   P = N·1024, K = 288: 18.9 MFLOP and 262 kB per image: compute
//
// Known costs: backward-data at stride > 1 issues s_h·s_w times the useful FMAs (the masked
// taps); a layer with 1-3 channels on the column side (backward-data of a first layer, which
// the engine never asks for) wastes most of a 32-wide tile.
//
// Tensor cores (Conv2dTuning::precision = TF32 / BF16): both kernels take the precision as a
// template argument. The gathering, tables, slab pipeline, chunking and epilogues stay; the
// slabs hold operands rounded as they are stored (kernels/cuda/tensor_core.h; BF16 slabs are 16
// deep in the gather kernel, for one m16n16k16 step), and the inner product is nvcuda::wmma:
// each warp owns a patch of 16x16 FP32 accumulators, loaded from the depth-major slabs as a
// col_major matrix_a and a row_major matrix_b. The FP32 instantiations compile to the same code
// as before (their PTX differs only in the shared arrays' alignment), so their bits are unchanged.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/conv2d.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_core.h"
#include "kernels/error.h"

namespace polytask::kernels::cuda {

namespace {

// ---- integer division by a run-time divisor ---------------------------------------------------
//
// n / d for 0 <= n < 2^31 as (mulhi(n, multiplier) + n) >> shift (Granlund and Montgomery,
// "Division by invariant integers using multiplication", 1994, fig. 4.1): with n < 2^31 the
// sum fits 32 bits. d = 1 gives multiplier 1, shift 0.
struct FastDivmod {
  int divisor = 1;
  unsigned multiplier = 1;
  unsigned shift = 0;
};

FastDivmod make_divmod(int64_t divisor) {
  FastDivmod f;
  f.divisor = int(divisor);
  unsigned l = 0;
  while ((uint64_t(1) << l) < uint64_t(divisor)) ++l;
  f.shift = l;
  f.multiplier = unsigned(
      ((uint64_t(1) << 32) * ((uint64_t(1) << l) - uint64_t(divisor))) / uint64_t(divisor) + 1);
  return f;
}

__device__ __forceinline__ int fast_div(const FastDivmod& f, int n) {
  const unsigned high = unsigned((uint64_t(unsigned(n)) * f.multiplier) >> 32);
  return int((high + unsigned(n)) >> f.shift);
}

// ---- shared pieces ---------------------------------------------------------------------------

// Shared rows are padded by one float4 (as in gemm.cu): rows stay 16-byte aligned for float4
// reads, and column-wise stores spread over banks.
constexpr int kPad = 4;

// A tap row that no window reaches: gathers with it always fail the bound check.
constexpr int kNoTap = -(1 << 29);

// Depth entries per table refill in the gather kernel (the workload's K <= 288 fits in two).
constexpr int kTableRows = 256;

// H100 and H200 have 132 SMs; Auto tiles aim to give each several blocks.
constexpr int64_t kSms = 132;

// What the slabs hold per Conv2dTuning::precision: FP32 floats (padded as above), or operands
// already rounded for the tensor cores (kernels/cuda/tensor_core.h), rows padded by 16 bytes.
template <MathPrecision P>
struct SlabMath {
  using Shared = typename tensor_core::Operand<P>::Shared;
  static constexpr int kRowPad = tensor_core::Operand<P>::kPad;
  static __device__ __forceinline__ Shared convert(float x) {
    return tensor_core::Operand<P>::convert(x);
  }
};
template <>
struct SlabMath<MathPrecision::FP32> {
  using Shared = float;
  static constexpr int kRowPad = kPad;
  static __device__ __forceinline__ float convert(float x) { return x; }
};

// ---- forward and backward-data: gather_gemm_kernel ---------------------------------------------

// One implicit GEMM out (M, N) = gathered (M, K) · weights (K, N), everything in int (the
// launcher checks that every tensor has fewer than 2^31 elements).
//   Row m = (image, row, col) of a grid of grid_pixels pixels per image, grid_w per row; its
//   window starts at src row row·row_scale + row_offset, column col·col_scale + col_offset.
//   Depth k = (channel, tap), tap = (ki, kj): gathered element = src[image·src_image +
//   channel·a_channel + r·src_w + c] with r = (start row + tap_sign·ki) / div_h (likewise c),
//   zero when a division is inexact or r, c fall outside src_h x src_w.
//   Weight of (k, n) = weights[channel·b_channel + tap + n·b_column].
//   out[image·N·grid_pixels + n·grid_pixels + pixel] = (acc + bias[n], ReLU) or (+= acc).
struct GatherGemm {
  const float* src;
  const float* weights;
  float* out;
  const float* bias;
  int m_size, n_size, k_size;
  FastDivmod grid_pixels, grid_w;
  int row_scale, row_offset, col_scale, col_offset;
  int src_image, src_h, src_w, div_h, div_w;
  FastDivmod taps, tap_w;
  int tap_sign, a_channel, b_channel, b_column;
  bool relu, accumulate;
};

// A 16 x 8 grid of 128 threads, each owning (BM/16) x (BN/8) outputs as 4x4 fragments spaced
// BM/2 (BN/2) apart, so that neighbouring threads read consecutive float4s of a shared row.
// On the tensor cores (TF32/BF16) the same 128 threads are 4 warps, each owning a kWarpM x
// kWarpN patch as 16x16 wmma accumulators; BF16 slabs are 16 deep (one m16n16k16 step), FP32
// and TF32 ones 8 (8 FMA steps, or one m16n16k8 step).
template <int BM, int BN, int BK = 8>
struct GatherTiles {
  static constexpr int kBM = BM, kBN = BN, kBK = BK;
  static constexpr int kThreads = 128;
  static constexpr int kThreadsM = 16;
  static constexpr int kTM = BM / kThreadsM, kTN = BN / (kThreads / kThreadsM);
  static constexpr int kFragsM = kTM / 4, kFragsN = kTN / 4;
  static constexpr int kFragStrideM = BM / kFragsM, kFragStrideN = BN / kFragsN;
  // Per slab a thread stages kARows gathered elements of one pixel (rows tid / BM + i·kARowStep)
  // and kBCols weights of one depth row (columns tid / BK + j·kBColStep).
  static constexpr int kARowStep = kThreads / BM, kARows = kBK / kARowStep;
  static constexpr int kBColStep = kThreads / kBK, kBCols = BN / kBColStep;
  // The epilogue: a thread writes one pixel's outputs for every kOutStep-th channel.
  static constexpr int kOutStep = kThreads / BM, kOutCols = BN / kOutStep;
  // Tensor cores: 2x2 warps, or 4x1 for the tall 128x32 tile (so that no warp is 16 wide).
  static constexpr int kWarpsN = (BM == 128 && BN == 32) ? 1 : 2;
  static constexpr int kWarpM = BM / (4 / kWarpsN), kWarpN = BN / kWarpsN;
  static_assert(kTM % 4 == 0 && kTN % 4 == 0 && kThreads % BM == 0 && BN % kBColStep == 0);
  static_assert(kFragStrideM * kFragsM == BM && kFragStrideN * kFragsN == BN);
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0 && kThreads == 128);
};

// The slab depth of each precision (see GatherTiles).
template <MathPrecision P>
constexpr int kGatherDepth = P == MathPrecision::BF16 ? 16 : 8;

template <class Tiles, MathPrecision P>
union GatherShared {
  using Shared = typename SlabMath<P>::Shared;
  static constexpr int kRowPad = SlabMath<P>::kRowPad;
  struct {
    alignas(32) Shared a[2][Tiles::kBK][Tiles::kBM + kRowPad];  // gathered slab, depth-major
    alignas(32) Shared b[2][Tiles::kBK][Tiles::kBN + kRowPad];  // weight slab, depth-major
    int4 table[kTableRows];  // {channel offset, tap row, tap column, weight offset or -1}
  } loop;
  alignas(32) float stage[Tiles::kBN][Tiles::kBM + kPad];  // the block's outputs, channel-major
};

// A block's accumulators: FP32 registers (a thread's 4x4 fragments), or the warp's wmma tiles.
template <class Tiles, MathPrecision P>
struct GatherAccumulators {
  static constexpr int kFragsM = Tiles::kWarpM / 16, kFragsN = Tiles::kWarpN / 16;
  tensor_core::Accumulator<P> frag[kFragsM][kFragsN];
};
template <class Tiles>
struct GatherAccumulators<Tiles, MathPrecision::FP32> {
  float v[Tiles::kTM][Tiles::kTN];
};

// kStrided: backward-data with stride > 1 (tap positions must divide by the stride).
// P: FP32 FMAs, or tensor cores on TF32/BF16 operands. The gathering, the table, the slab
// pipeline and the epilogue are the same for all three; only the slab element type (rounded as
// it is stored), the slab depth and the inner product differ. Tensor cores: the depth-major
// slabs a[k][m] and b[k][n] are a col_major matrix_a and a row_major matrix_b, and the
// channel-major staging stage[n][m] is a col_major accumulator store.
// One block of gather_gemm_kernel (below), which calls it only where kCompiled<P>.
template <class Tiles, bool kStrided, MathPrecision P>
__device__ __forceinline__ void gather_gemm_block(GatherGemm p) {
  constexpr int BM = Tiles::kBM, BN = Tiles::kBN, BK = Tiles::kBK;
  constexpr int kThreads = Tiles::kThreads, kSlabsPerTable = kTableRows / BK;
  using Math = SlabMath<P>;
  static_assert(BK == kGatherDepth<P>, "slab depth of the precision");
  __shared__ GatherShared<Tiles, P> smem;

  const float* __restrict__ src = p.src;
  const float* __restrict__ weights = p.weights;
  const int tid = int(threadIdx.x);
  const int n_tiles = (p.n_size + BN - 1) / BN;
  // Neighbouring blocks share a pixel tile (and its gathered input) across channel tiles.
  const int m0 = int(blockIdx.x) / n_tiles * BM;
  const int n0 = int(blockIdx.x) % n_tiles * BN;

  // This thread's gathered row: one pixel, fixed for the whole depth loop.
  const int a_col_in_tile = tid % BM;
  const int a_first_row = tid / BM;
  const int a_m = m0 + a_col_in_tile;
  const bool a_valid = a_m < p.m_size;
  int a_base = 0, a_row = 0, a_col = 0;
  if (a_valid) {
    const int image = fast_div(p.grid_pixels, a_m);
    const int pixel = a_m - image * p.grid_pixels.divisor;
    const int row = fast_div(p.grid_w, pixel);
    const int col = pixel - row * p.grid_w.divisor;
    a_base = image * p.src_image;
    a_row = row * p.row_scale + p.row_offset;
    a_col = col * p.col_scale + p.col_offset;
  }
  // This thread's weight row within a slab.
  const int b_row = tid % BK;
  const int b_first_col = tid / BK;

  const auto fill_table = [&](int k_base) {
    for (int i = tid; i < kTableRows; i += kThreads) {
      const int k = k_base + i;
      int4 entry = make_int4(0, kNoTap, kNoTap, -1);
      if (k < p.k_size) {
        const int channel = fast_div(p.taps, k);
        const int tap = k - channel * p.taps.divisor;
        const int ki = fast_div(p.tap_w, tap);
        const int kj = tap - ki * p.tap_w.divisor;
        entry = make_int4(channel * p.a_channel, p.tap_sign * ki, p.tap_sign * kj,
                          channel * p.b_channel + tap);
      }
      smem.loop.table[i] = entry;
    }
  };

  float a_staged[Tiles::kARows], b_staged[Tiles::kBCols];
  const auto load = [&](int slab) {
    const int4* rows = smem.loop.table + (slab % kSlabsPerTable) * BK;
#pragma unroll
    for (int i = 0; i < Tiles::kARows; ++i) {
      const int4 e = rows[a_first_row + i * Tiles::kARowStep];
      int r = a_row + e.y, c = a_col + e.z;
      bool ok = a_valid;
      if constexpr (kStrided) {
        ok = ok && r >= 0 && c >= 0 && r % p.div_h == 0 && c % p.div_w == 0;
        r /= p.div_h;
        c /= p.div_w;
      }
      ok = ok && unsigned(r) < unsigned(p.src_h) && unsigned(c) < unsigned(p.src_w);
      a_staged[i] = ok ? src[a_base + e.x + r * p.src_w + c] : 0.0f;
    }
    const int weight_offset = rows[b_row].w;
#pragma unroll
    for (int j = 0; j < Tiles::kBCols; ++j) {
      const int n = n0 + b_first_col + j * Tiles::kBColStep;
      b_staged[j] =
          (weight_offset >= 0 && n < p.n_size) ? weights[weight_offset + n * p.b_column] : 0.0f;
    }
  };
  const auto store = [&](int buffer) {
#pragma unroll
    for (int i = 0; i < Tiles::kARows; ++i)
      smem.loop.a[buffer][a_first_row + i * Tiles::kARowStep][a_col_in_tile] =
          Math::convert(a_staged[i]);
#pragma unroll
    for (int j = 0; j < Tiles::kBCols; ++j)
      smem.loop.b[buffer][b_row][b_first_col + j * Tiles::kBColStep] = Math::convert(b_staged[j]);
  };

  const int thread_m = tid % Tiles::kThreadsM;
  const int thread_n = tid / Tiles::kThreadsM;
  // Tensor cores: this warp's patch of the block tile.
  const int warp_m0 = (tid / 32) / Tiles::kWarpsN * Tiles::kWarpM;
  const int warp_n0 = (tid / 32) % Tiles::kWarpsN * Tiles::kWarpN;
  GatherAccumulators<Tiles, P> acc;
  if constexpr (P == MathPrecision::FP32) {
#pragma unroll
    for (int i = 0; i < Tiles::kTM; ++i)
#pragma unroll
      for (int j = 0; j < Tiles::kTN; ++j) acc.v[i][j] = 0.0f;
  } else {
    for (auto& row : acc.frag)
      for (auto& frag : row) nvcuda::wmma::fill_fragment(frag, 0.0f);
  }

  const int slabs = (p.k_size + BK - 1) / BK;
  fill_table(0);
  __syncthreads();
  if (slabs > 0) {
    load(0);
    store(0);
  }
  __syncthreads();

  for (int slab = 0; slab < slabs; ++slab) {
    const int buffer = slab & 1;
    const bool has_next = slab + 1 < slabs;
    if (has_next) {
      // Every thread finished reading the table (in load) before the previous barrier.
      if ((slab + 1) % kSlabsPerTable == 0) {
        fill_table((slab + 1) * BK);
        __syncthreads();
      }
      load(slab + 1);
    }
    if constexpr (P == MathPrecision::FP32) {
#pragma unroll
      for (int k = 0; k < BK; ++k) {
        float frag_a[Tiles::kTM], frag_b[Tiles::kTN];
#pragma unroll
        for (int f = 0; f < Tiles::kFragsM; ++f) {
          const float4 v = *reinterpret_cast<const float4*>(
              &smem.loop.a[buffer][k][thread_m * 4 + f * Tiles::kFragStrideM]);
          frag_a[f * 4 + 0] = v.x;
          frag_a[f * 4 + 1] = v.y;
          frag_a[f * 4 + 2] = v.z;
          frag_a[f * 4 + 3] = v.w;
        }
#pragma unroll
        for (int f = 0; f < Tiles::kFragsN; ++f) {
          const float4 v = *reinterpret_cast<const float4*>(
              &smem.loop.b[buffer][k][thread_n * 4 + f * Tiles::kFragStrideN]);
          frag_b[f * 4 + 0] = v.x;
          frag_b[f * 4 + 1] = v.y;
          frag_b[f * 4 + 2] = v.z;
          frag_b[f * 4 + 3] = v.w;
        }
#pragma unroll
        for (int i = 0; i < Tiles::kTM; ++i)
#pragma unroll
          for (int j = 0; j < Tiles::kTN; ++j)
            acc.v[i][j] = fmaf(frag_a[i], frag_b[j], acc.v[i][j]);
      }
    } else {
      using Acc = GatherAccumulators<Tiles, P>;
      constexpr int kStep = tensor_core::Operand<P>::kK;
#pragma unroll
      for (int kk = 0; kk < BK; kk += kStep) {
        tensor_core::FragmentA<P, nvcuda::wmma::col_major> frag_a[Acc::kFragsM];
        tensor_core::FragmentB<P, nvcuda::wmma::row_major> frag_b[Acc::kFragsN];
#pragma unroll
        for (int i = 0; i < Acc::kFragsM; ++i)
          nvcuda::wmma::load_matrix_sync(frag_a[i], &smem.loop.a[buffer][kk][warp_m0 + i * 16],
                                         BM + Math::kRowPad);
#pragma unroll
        for (int j = 0; j < Acc::kFragsN; ++j)
          nvcuda::wmma::load_matrix_sync(frag_b[j], &smem.loop.b[buffer][kk][warp_n0 + j * 16],
                                         BN + Math::kRowPad);
#pragma unroll
        for (int i = 0; i < Acc::kFragsM; ++i)
#pragma unroll
          for (int j = 0; j < Acc::kFragsN; ++j)
            nvcuda::wmma::mma_sync(acc.frag[i][j], frag_a[i], frag_b[j], acc.frag[i][j]);
      }
    }
    // The other buffer was last read before the previous barrier: free to fill.
    if (has_next) store(buffer ^ 1);
    __syncthreads();
  }

  // Epilogue. The last barrier retired the slabs and the table, so the block's outputs can be
  // staged over them channel-major; then consecutive threads write consecutive pixels of a
  // channel plane (coalesced, whatever the plane's size or alignment).
  if constexpr (P == MathPrecision::FP32) {
#pragma unroll
    for (int fm = 0; fm < Tiles::kFragsM; ++fm)
#pragma unroll
      for (int fn = 0; fn < Tiles::kFragsN; ++fn)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int n_in_tile = thread_n * 4 + fn * Tiles::kFragStrideN + j;
          const int m_in_tile = thread_m * 4 + fm * Tiles::kFragStrideM;
          const int col = fn * 4 + j;
          *reinterpret_cast<float4*>(&smem.stage[n_in_tile][m_in_tile]) =
              make_float4(acc.v[fm * 4 + 0][col], acc.v[fm * 4 + 1][col], acc.v[fm * 4 + 2][col],
                          acc.v[fm * 4 + 3][col]);
        }
  } else {
    using Acc = GatherAccumulators<Tiles, P>;
#pragma unroll
    for (int i = 0; i < Acc::kFragsM; ++i)
#pragma unroll
      for (int j = 0; j < Acc::kFragsN; ++j)
        nvcuda::wmma::store_matrix_sync(&smem.stage[warp_n0 + j * 16][warp_m0 + i * 16],
                                        acc.frag[i][j], BM + kPad, nvcuda::wmma::mem_col_major);
  }
  __syncthreads();
  if (!a_valid) return;

  const int pixels = p.grid_pixels.divisor;
  const int image = fast_div(p.grid_pixels, a_m);
  float* const out = p.out + (image * p.n_size * pixels + (a_m - image * pixels));
  const float* __restrict__ bias = p.bias;
#pragma unroll 4
  for (int j = 0; j < Tiles::kOutCols; ++j) {
    const int n_in_tile = a_first_row + j * Tiles::kOutStep;
    const int n = n0 + n_in_tile;
    if (n >= p.n_size) break;
    float v = smem.stage[n_in_tile][a_col_in_tile];
    float* const dst = out + n * pixels;
    if (bias != nullptr) v = v + bias[n];
    if (p.relu) v = v < 0.0f ? 0.0f : v;
    if (p.accumulate) v = *dst + v;
    *dst = v;
  }
}

template <class Tiles, bool kStrided, MathPrecision P>
__global__ void __launch_bounds__(Tiles::kThreads, 4) gather_gemm_kernel(GatherGemm p) {
  if constexpr (tensor_core::kCompiled<P>)
    gather_gemm_block<Tiles, kStrided, P>(p);
  else
    tensor_core::unreachable();
}

// ---- backward-filter: filter_gemm_kernel and finish_filter_kernel ------------------------------

// dw_ext (c_out, columns) = dy (c_out, pixels) · patches (pixels, columns), where columns =
// patch (+1: the bias column, patches = 1, when db is wanted); the pixel range is split into
// chunks of chunk_pixels, one per blockIdx.y. With one chunk the kernel writes dw/db itself;
// otherwise it stores its chunk's sums in partial[chunk][c_out][columns].
struct FilterGemm {
  const float* x;
  const float* dy;
  float* dw;
  float* db;
  float* partial;  // nullptr: write dw/db directly
  int c_out, patch, columns;
  int pixels, chunk_pixels;
  FastDivmod out_pixels, w_out;
  int stride_h, stride_w, pad_top, pad_left;
  int x_image, h_in, w_in, x_channel, dy_image;
  FastDivmod taps, tap_w;
  bool accumulate;
};

// A group of BM·BN/16 threads owns a BM x BN tile at 4x4 outputs per thread; narrow tiles run
// kGroups groups per block, each over its own slabs (slab t·kGroups + g), so that every block
// has 128 or more threads to hide latency with; the groups' sums are added in group order.
// On the tensor cores a group's BM·BN/512 warps each own a 32x16 patch (two 16x16 wmma
// accumulators); the 16-pixel slab is two TF32 or one BF16 mma step.
template <int BM, int BN>
struct FilterTiles {
  static constexpr int kBM = BM, kBN = BN, kBK = 16;  // 16 pixels per slab
  static constexpr int kGroupThreads = BM * BN / 16;
  static constexpr int kGroups = kGroupThreads >= 128 ? 1 : 128 / kGroupThreads;
  static constexpr int kThreads = kGroupThreads * kGroups;
  // 512 threads per SM at least: caps registers at 128 (left alone, ptxas squeezes the 32x16
  // tile to 80 registers and spills).
  static constexpr int kMinBlocks = 512 / kThreads;
  static constexpr int kThreadsM = BM / 4;
  // Loads: a thread takes pixel (gtid % BK) of the slab and rows gtid / BK + u·kUnitStep.
  static constexpr int kUnitStep = kGroupThreads / kBK;
  static constexpr int kAUnits = BM / kUnitStep, kBUnits = BN / kUnitStep;
  // Tensor cores: warps of a group, BN/16 across; each 32 rows x 16 columns.
  static constexpr int kWarpsN = BN / 16;
  static_assert(kGroupThreads % 32 == 0 && kGroupThreads % kBK == 0);
  static_assert(BM % kUnitStep == 0 && BN % kUnitStep == 0);
  static_assert(kGroupThreads / 32 == (BM / 32) * kWarpsN, "32x16 warp patches tile BM x BN");
};

template <class Tiles, MathPrecision P>
union FilterShared {
  using Shared = typename SlabMath<P>::Shared;
  static constexpr int kRowPad = SlabMath<P>::kRowPad;
  struct {
    alignas(32) Shared a[Tiles::kGroups][2][Tiles::kBK][Tiles::kBM + kRowPad];  // dy, pixel-major
    alignas(32) Shared b[Tiles::kGroups][2][Tiles::kBK][Tiles::kBN + kRowPad];  // patches, same
    int4 table[Tiles::kBN];  // {channel offset, ki, kj, 1 for the bias column}
  } loop;
  float sums[Tiles::kGroups > 1 ? Tiles::kGroups - 1 : 1][16][Tiles::kGroupThreads];  // FP32
  // Tensor cores: every group's accumulators, row-major (no larger than `loop` for any tile).
  alignas(32) float stage[Tiles::kGroups][Tiles::kBM][Tiles::kBN + kPad];
};

template <class Tiles, MathPrecision P>
struct FilterAccumulators {
  tensor_core::Accumulator<P> frag[2];  // rows 0-15 and 16-31 of the warp's 32x16 patch
};
template <class Tiles>
struct FilterAccumulators<Tiles, MathPrecision::FP32> {
  float v[4][4];
};

// P: FP32 FMAs, or tensor cores on TF32/BF16 operands (rounded as they are staged). The pixel-
// major slabs a[q][co] and b[q][col] are then a col_major matrix_a and a row_major matrix_b;
// after the loop every group stores its accumulators to `stage`, and the block adds the groups
// in group order, as the FP32 path does.
// One block of filter_gemm_kernel (below), which calls it only where kCompiled<P>.
template <class Tiles, MathPrecision P>
__device__ __forceinline__ void filter_gemm_block(FilterGemm p) {
  constexpr int BM = Tiles::kBM, BN = Tiles::kBN, BK = Tiles::kBK;
  constexpr int kGroups = Tiles::kGroups, kGroupThreads = Tiles::kGroupThreads;
  using Math = SlabMath<P>;
  __shared__ FilterShared<Tiles, P> smem;

  const float* __restrict__ x = p.x;
  const float* __restrict__ dy = p.dy;
  const int tid = int(threadIdx.x);
  const int group = tid / kGroupThreads, gtid = tid % kGroupThreads;
  const int n_tiles = (p.columns + BN - 1) / BN;
  const int m0 = int(blockIdx.x) / n_tiles * BM;
  const int n0 = int(blockIdx.x) % n_tiles * BN;
  const int chunk = int(blockIdx.y);
  const int q_begin = chunk * p.chunk_pixels;
  const int q_end = min(p.pixels, q_begin + p.chunk_pixels);

  for (int i = tid; i < BN; i += Tiles::kThreads) {
    const int k = n0 + i;
    int4 entry = make_int4(0, kNoTap, kNoTap, 0);
    if (k < p.patch) {
      const int channel = fast_div(p.taps, k);
      const int tap = k - channel * p.taps.divisor;
      const int ki = fast_div(p.tap_w, tap);
      entry = make_int4(channel * p.x_channel, ki, tap - ki * p.tap_w.divisor, 0);
    } else if (k < p.columns) {
      entry.w = 1;
    }
    smem.loop.table[i] = entry;
  }

  const int pixel_in_slab = gtid % BK;
  const int first_unit = gtid / BK;
  float a_staged[Tiles::kAUnits], b_staged[Tiles::kBUnits];
  const auto load = [&](int step) {
    const int q = q_begin + (step * kGroups + group) * BK + pixel_in_slab;
    const bool valid = q < q_end;
    int dy_offset = 0, x_base = 0, r0 = 0, c0 = 0;
    if (valid) {
      const int image = fast_div(p.out_pixels, q);
      const int pixel = q - image * p.out_pixels.divisor;
      const int oh = fast_div(p.w_out, pixel);
      const int ow = pixel - oh * p.w_out.divisor;
      dy_offset = image * p.dy_image + pixel;
      x_base = image * p.x_image;
      r0 = oh * p.stride_h - p.pad_top;
      c0 = ow * p.stride_w - p.pad_left;
    }
    const int plane = p.out_pixels.divisor;
#pragma unroll
    for (int u = 0; u < Tiles::kAUnits; ++u) {
      const int co = m0 + first_unit + u * Tiles::kUnitStep;
      a_staged[u] = (valid && co < p.c_out) ? dy[dy_offset + co * plane] : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < Tiles::kBUnits; ++u) {
      const int4 e = smem.loop.table[first_unit + u * Tiles::kUnitStep];
      const int r = r0 + e.y, c = c0 + e.z;
      const bool inside = valid && unsigned(r) < unsigned(p.h_in) && unsigned(c) < unsigned(p.w_in);
      float v = inside ? x[x_base + e.x + r * p.w_in + c] : 0.0f;
      if (e.w != 0) v = valid ? 1.0f : 0.0f;
      b_staged[u] = v;
    }
  };
  const auto store = [&](int buffer) {
#pragma unroll
    for (int u = 0; u < Tiles::kAUnits; ++u)
      smem.loop.a[group][buffer][pixel_in_slab][first_unit + u * Tiles::kUnitStep] =
          Math::convert(a_staged[u]);
#pragma unroll
    for (int u = 0; u < Tiles::kBUnits; ++u)
      smem.loop.b[group][buffer][pixel_in_slab][first_unit + u * Tiles::kUnitStep] =
          Math::convert(b_staged[u]);
  };

  const int thread_m = gtid % Tiles::kThreadsM;
  const int thread_n = gtid / Tiles::kThreadsM;
  // Tensor cores: this warp's 32x16 patch of the tile.
  const int warp_m0 = (gtid / 32) / Tiles::kWarpsN * 32;
  const int warp_n0 = (gtid / 32) % Tiles::kWarpsN * 16;
  FilterAccumulators<Tiles, P> acc;
  if constexpr (P == MathPrecision::FP32) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc.v[i][j] = 0.0f;
  } else {
    for (auto& frag : acc.frag) nvcuda::wmma::fill_fragment(frag, 0.0f);
  }

  const int slabs = q_end > q_begin ? (q_end - q_begin + BK - 1) / BK : 0;
  const int steps = (slabs + kGroups - 1) / kGroups;
  __syncthreads();  // the table
  if (steps > 0) {
    load(0);
    store(0);
  }
  __syncthreads();

  for (int step = 0; step < steps; ++step) {
    const int buffer = step & 1;
    const bool has_next = step + 1 < steps;
    if (has_next) load(step + 1);
    if constexpr (P == MathPrecision::FP32) {
#pragma unroll
      for (int k = 0; k < BK; ++k) {
        const float4 a =
            *reinterpret_cast<const float4*>(&smem.loop.a[group][buffer][k][thread_m * 4]);
        const float4 b =
            *reinterpret_cast<const float4*>(&smem.loop.b[group][buffer][k][thread_n * 4]);
        const float frag_a[4] = {a.x, a.y, a.z, a.w};
        const float frag_b[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc.v[i][j] = fmaf(frag_a[i], frag_b[j], acc.v[i][j]);
      }
    } else {
      constexpr int kStep = tensor_core::Operand<P>::kK;
#pragma unroll
      for (int kk = 0; kk < BK; kk += kStep) {
        tensor_core::FragmentA<P, nvcuda::wmma::col_major> frag_a[2];
        tensor_core::FragmentB<P, nvcuda::wmma::row_major> frag_b;
#pragma unroll
        for (int i = 0; i < 2; ++i)
          nvcuda::wmma::load_matrix_sync(
              frag_a[i], &smem.loop.a[group][buffer][kk][warp_m0 + i * 16], BM + Math::kRowPad);
        nvcuda::wmma::load_matrix_sync(frag_b, &smem.loop.b[group][buffer][kk][warp_n0],
                                       BN + Math::kRowPad);
#pragma unroll
        for (int i = 0; i < 2; ++i)
          nvcuda::wmma::mma_sync(acc.frag[i], frag_a[i], frag_b, acc.frag[i]);
      }
    }
    if (has_next) store(buffer ^ 1);
    __syncthreads();
  }

  if constexpr (P != MathPrecision::FP32) {
    // The loop's last barrier retired the slabs; every group's sums go over them, then each
    // thread of the block finishes elements gtid-strided: group sums added in group order.
#pragma unroll
    for (int i = 0; i < 2; ++i)
      nvcuda::wmma::store_matrix_sync(&smem.stage[group][warp_m0 + i * 16][warp_n0], acc.frag[i],
                                      BN + kPad, nvcuda::wmma::mem_row_major);
    __syncthreads();
    for (int e = tid; e < BM * BN; e += Tiles::kThreads) {
      const int row = e / BN, column = e % BN;
      const int co = m0 + row, col = n0 + column;
      if (co >= p.c_out || col >= p.columns) continue;
      float v = smem.stage[0][row][column];
#pragma unroll
      for (int g = 1; g < kGroups; ++g) v = v + smem.stage[g][row][column];
      if (p.partial != nullptr) {
        p.partial[(chunk * p.c_out + co) * p.columns + col] = v;
      } else {
        float* const dst = col < p.patch ? p.dw + co * p.patch + col : p.db + co;
        *dst = p.accumulate ? *dst + v : v;
      }
    }
  } else {
    if constexpr (kGroups > 1) {
      // The loop's last barrier retired the slabs; the groups' sums go over them, and group 0
      // adds them in group order.
      if (group > 0)
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) smem.sums[group - 1][i * 4 + j][gtid] = acc.v[i][j];
      __syncthreads();
      if (group == 0)
        for (int g = 1; g < kGroups; ++g)
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
              acc.v[i][j] = acc.v[i][j] + smem.sums[g - 1][i * 4 + j][gtid];
    }
    if (group != 0) return;

#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int co = m0 + thread_m * 4 + i;
      if (co >= p.c_out) break;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int col = n0 + thread_n * 4 + j;
        if (col >= p.columns) break;
        const float v = acc.v[i][j];
        if (p.partial != nullptr) {
          p.partial[(chunk * p.c_out + co) * p.columns + col] = v;
        } else {
          float* const dst = col < p.patch ? p.dw + co * p.patch + col : p.db + co;
          *dst = p.accumulate ? *dst + v : v;
        }
      }
    }
  }
}

template <class Tiles, MathPrecision P>
__global__ void __launch_bounds__(Tiles::kThreads, Tiles::kMinBlocks)
    filter_gemm_kernel(FilterGemm p) {
  if constexpr (tensor_core::kCompiled<P>)
    filter_gemm_block<Tiles, P>(p);
  else
    tensor_core::unreachable();
}

constexpr int kFinishLanes = 32, kFinishWarps = 8;

// dw/db (=|+=) the sum over chunks of partial[chunk][c_out][columns]. A block owns 32
// consecutive elements (coalesced reads of each chunk's row); warp w adds chunks w, w + 8, ...
// in order, in double; lane threads of warp 0 then add the 8 warp sums in warp order. Memory-
// bound: 4·chunks·c_out·columns bytes read.
__global__ void __launch_bounds__(kFinishLanes* kFinishWarps)
    finish_filter_kernel(const float* __restrict__ partial, int chunks, int c_out, int patch,
                         int columns, float* __restrict__ dw, float* __restrict__ db,
                         bool accumulate) {
  __shared__ double sums[kFinishWarps][kFinishLanes];
  const int lane = int(threadIdx.x) % kFinishLanes;
  const int warp = int(threadIdx.x) / kFinishLanes;
  const int elements = c_out * columns;
  const int e = int(blockIdx.x) * kFinishLanes + lane;
  double sum = 0.0;
  if (e < elements)
    for (int c = warp; c < chunks; c += kFinishWarps) sum += double(partial[c * elements + e]);
  sums[warp][lane] = sum;
  __syncthreads();
  if (warp != 0 || e >= elements) return;
  double total = 0.0;
#pragma unroll
  for (int w = 0; w < kFinishWarps; ++w) total += sums[w][lane];
  const int co = e / columns, col = e - co * columns;
  float* const dst = col < patch ? dw + co * patch + col : db + co;
  const float v = float(total);
  *dst = accumulate ? *dst + v : v;
}

// ---- host side ---------------------------------------------------------------------------------

constexpr int64_t kMaxElements = std::numeric_limits<int>::max();

void check_sizes(const char* op, const Conv2dShape& s) {
  const auto check = [&](const char* what, int64_t count) {
    if (count < 0 || count > kMaxElements)
      fail(op, ": ", what, " has ", count, " elements; the CUDA kernels index with int (< 2^31)");
  };
  if (s.n < 0 || s.c_in < 0 || s.h_in < 0 || s.w_in < 0 || s.c_out < 0 || s.k_h <= 0 ||
      s.k_w <= 0 || s.stride_h <= 0 || s.stride_w <= 0 || s.h_out < 0 || s.w_out < 0 ||
      s.pad_top < 0 || s.pad_left < 0)
    fail(op, ": invalid shape");
  // Each product is checked before it feeds the next, so none overflows int64 either.
  check("an input image", s.c_in * s.h_in * s.w_in);
  check("an output image", s.c_out * s.out_pixels());
  check("x", s.n * s.c_in * s.h_in * s.w_in);
  check("y", s.n * s.c_out * s.out_pixels());
  check("w (plus the bias column)", s.c_out * (s.patch_size() + 1));
  // Tap origins and padding stay far from kNoTap.
  if (s.h_in > (1 << 24) || s.w_in > (1 << 24) || s.h_out > (1 << 24) || s.w_out > (1 << 24) ||
      s.k_h > (1 << 24) || s.k_w > (1 << 24) || s.pad_top > (1 << 24) || s.pad_left > (1 << 24) ||
      s.stride_h > (1 << 24) || s.stride_w > (1 << 24))
    fail(op, ": spatial sizes beyond 2^24 are not supported");
}

// Channels (columns) above 32 take the 64-wide tiles, so a 64-channel layer is one column tile
// and every gathered element feeds 64 FMAs. The 128-pixel tiles halve the weight traffic per
// FMA, but only when the grid still gives every SM two blocks; else the 64-pixel tiles.
Conv2dTiles pick_gather_tiles(int64_t rows, int64_t columns) {
  const bool wide = columns > 32;
  const int64_t column_tiles = (columns + (wide ? 63 : 31)) / (wide ? 64 : 32);
  if ((rows + 127) / 128 * column_tiles >= 2 * kSms)
    return wide ? Conv2dTiles::M128N64 : Conv2dTiles::M128N32;
  return wide ? Conv2dTiles::M64N64 : Conv2dTiles::M64N32;
}

template <class Tiles, MathPrecision P>
void launch_gather_tiles(const char* op, const GatherGemm& p, bool strided, Stream stream) {
  const int64_t blocks = int64_t((p.m_size + Tiles::kBM - 1) / Tiles::kBM) *
                         ((p.n_size + Tiles::kBN - 1) / Tiles::kBN);
  if (blocks > kMaxElements) fail(op, ": ", blocks, " blocks, more than a grid holds");
  if (strided)
    launch(op, gather_gemm_kernel<Tiles, true, P>, dim3(unsigned(blocks)), dim3(Tiles::kThreads),
           0, stream, p);
  else
    launch(op, gather_gemm_kernel<Tiles, false, P>, dim3(unsigned(blocks)), dim3(Tiles::kThreads),
           0, stream, p);
}

template <MathPrecision P>
void launch_gather_precision(const char* op, Conv2dTiles tiles, const GatherGemm& p, bool strided,
                             Stream stream) {
  constexpr int kDepth = kGatherDepth<P>;
  switch (tiles) {
    case Conv2dTiles::M128N64:
      return launch_gather_tiles<GatherTiles<128, 64, kDepth>, P>(op, p, strided, stream);
    case Conv2dTiles::M64N64:
      return launch_gather_tiles<GatherTiles<64, 64, kDepth>, P>(op, p, strided, stream);
    case Conv2dTiles::M128N32:
      return launch_gather_tiles<GatherTiles<128, 32, kDepth>, P>(op, p, strided, stream);
    case Conv2dTiles::M64N32:
    case Conv2dTiles::Auto:
      return launch_gather_tiles<GatherTiles<64, 32, kDepth>, P>(op, p, strided, stream);
  }
}

void launch_gather(const char* op, const Conv2dTuning& tuning, const GatherGemm& p, bool strided,
                   Stream stream) {
  const Conv2dTiles tiles =
      tuning.tiles == Conv2dTiles::Auto ? pick_gather_tiles(p.m_size, p.n_size) : tuning.tiles;
  switch (tuning.precision) {
    case MathPrecision::FP32:
      return launch_gather_precision<MathPrecision::FP32>(op, tiles, p, strided, stream);
    case MathPrecision::TF32:
      return launch_gather_precision<MathPrecision::TF32>(op, tiles, p, strided, stream);
    case MathPrecision::BF16:
      return launch_gather_precision<MathPrecision::BF16>(op, tiles, p, strided, stream);
  }
  fail(op, ": unknown MathPrecision ", int(tuning.precision));
}

// The backward-filter plan: tiles, and how the pixel sum splits into chunks. Everything here
// depends on the shape and the tuning only, so the summation order (and the bits) too.
struct FilterPlan {
  Conv2dFilterTiles tiles = Conv2dFilterTiles::M32N16;
  int bm = 32, bn = 16, groups = 4;
  int64_t planned_chunks = 1;  // what the workspace is sized for (>= chunks)
  int64_t chunks = 1;
  int64_t chunk_pixels = 16;
};

// Blocks the chunking aims for: four per SM. More chunks would add partial-sum traffic
// (2·4·chunks·c_out·(K+1) bytes) and finishing work for no more parallelism.
constexpr int64_t kTargetFilterBlocks = 4 * kSms;
constexpr int64_t kMaxFilterChunks = 512;
// A chunk gives each of a block's thread groups at least this many slabs, so the per-block
// setup (table, first load, epilogue) stays small next to the loop.
constexpr int64_t kMinStepsPerChunk = 4;
constexpr int64_t kFilterSlab = 16;  // FilterTiles::kBK

Conv2dFilterTiles pick_filter_tiles(int64_t c_out, int64_t columns) {
  if (c_out > 32) return Conv2dFilterTiles::M64N64;
  if (columns <= 16) return Conv2dFilterTiles::M32N16;
  if (columns <= 32) return Conv2dFilterTiles::M32N32;
  return Conv2dFilterTiles::M32N64;
}

template <class Tiles>
void describe_filter_tiles(FilterPlan& plan) {
  plan.bm = Tiles::kBM;
  plan.bn = Tiles::kBN;
  plan.groups = Tiles::kGroups;
}

FilterPlan plan_filter(const Conv2dShape& s, const Conv2dTuning& tuning) {
  FilterPlan plan;
  // Sized for the bias column whether or not db is wanted, so the plan does not depend on it.
  const int64_t columns = s.patch_size() + 1;
  plan.tiles = tuning.filter_tiles == Conv2dFilterTiles::Auto ? pick_filter_tiles(s.c_out, columns)
                                                              : tuning.filter_tiles;
  switch (plan.tiles) {
    case Conv2dFilterTiles::M32N32:
      describe_filter_tiles<FilterTiles<32, 32>>(plan);
      break;
    case Conv2dFilterTiles::M32N64:
      describe_filter_tiles<FilterTiles<32, 64>>(plan);
      break;
    case Conv2dFilterTiles::M64N64:
      describe_filter_tiles<FilterTiles<64, 64>>(plan);
      break;
    case Conv2dFilterTiles::M32N16:
    case Conv2dFilterTiles::Auto:
      plan.tiles = Conv2dFilterTiles::M32N16;
      describe_filter_tiles<FilterTiles<32, 16>>(plan);
      break;
  }
  const int64_t pixels = s.n * s.out_pixels();
  if (pixels <= 0) return plan;  // one chunk of nothing: writes zeros (Overwrite) or nothing
  const int64_t tiles = ((s.c_out + plan.bm - 1) / plan.bm) * ((columns + plan.bn - 1) / plan.bn);
  const int64_t slabs = (pixels + kFilterSlab - 1) / kFilterSlab;
  if (tuning.filter_chunks > 0) {
    plan.planned_chunks = std::clamp<int64_t>(tuning.filter_chunks, 1, slabs);
  } else {
    const int64_t useful = std::max<int64_t>(1, slabs / (plan.groups * kMinStepsPerChunk));
    const int64_t wanted = std::clamp<int64_t>(
        (kTargetFilterBlocks + tiles - 1) / std::max<int64_t>(tiles, 1), 1, kMaxFilterChunks);
    plan.planned_chunks = std::min(wanted, useful);
  }
  // Whole slabs per chunk; rounding up can leave fewer chunks than planned, never more.
  const int64_t per_chunk = (pixels + plan.planned_chunks - 1) / plan.planned_chunks;
  plan.chunk_pixels = (per_chunk + kFilterSlab - 1) / kFilterSlab * kFilterSlab;
  plan.chunks = (pixels + plan.chunk_pixels - 1) / plan.chunk_pixels;
  return plan;
}

template <class Tiles, MathPrecision P>
void launch_filter_tiles(const char* op, const FilterGemm& p, int64_t chunks, Stream stream) {
  const int64_t tiles = int64_t((p.c_out + Tiles::kBM - 1) / Tiles::kBM) *
                        ((p.columns + Tiles::kBN - 1) / Tiles::kBN);
  launch(op, filter_gemm_kernel<Tiles, P>, dim3(unsigned(tiles), unsigned(chunks)),
         dim3(Tiles::kThreads), 0, stream, p);
}

template <MathPrecision P>
void launch_filter(const char* op, Conv2dFilterTiles tiles, const FilterGemm& p, int64_t chunks,
                   Stream stream) {
  switch (tiles) {
    case Conv2dFilterTiles::M32N32:
      return launch_filter_tiles<FilterTiles<32, 32>, P>(op, p, chunks, stream);
    case Conv2dFilterTiles::M32N64:
      return launch_filter_tiles<FilterTiles<32, 64>, P>(op, p, chunks, stream);
    case Conv2dFilterTiles::M64N64:
      return launch_filter_tiles<FilterTiles<64, 64>, P>(op, p, chunks, stream);
    case Conv2dFilterTiles::M32N16:
    case Conv2dFilterTiles::Auto:
      return launch_filter_tiles<FilterTiles<32, 16>, P>(op, p, chunks, stream);
  }
}

// The name a launch reports (in errors and with POLYTASK_CUDA_SYNC): the op, and the precision
// when it is not FP32.
const char* launch_name(const char* const (&names)[3], MathPrecision precision) {
  switch (precision) {
    case MathPrecision::FP32:
      return names[0];
    case MathPrecision::TF32:
      return names[1];
    case MathPrecision::BF16:
      return names[2];
  }
  fail(names[0], ": unknown MathPrecision ", int(precision));
}

constexpr const char* kForwardNames[3] = {"cuda::conv2d_forward",
                                          "cuda::conv2d_forward (TF32 tensor cores)",
                                          "cuda::conv2d_forward (BF16 tensor cores)"};
constexpr const char* kBackwardDataNames[3] = {"cuda::conv2d_backward_data",
                                               "cuda::conv2d_backward_data (TF32 tensor cores)",
                                               "cuda::conv2d_backward_data (BF16 tensor cores)"};
constexpr const char* kBackwardFilterNames[3] = {
    "cuda::conv2d_backward_filter", "cuda::conv2d_backward_filter (TF32 tensor cores)",
    "cuda::conv2d_backward_filter (BF16 tensor cores)"};

}  // namespace

int64_t conv2d_workspace_elements(const Conv2dShape& s) {
  return conv2d_workspace_elements(s, Conv2dTuning{});
}

int64_t conv2d_workspace_elements(const Conv2dShape& s, const Conv2dTuning& tuning) {
  if (s.n <= 0 || s.c_out <= 0) return 0;
  const FilterPlan plan = plan_filter(s, tuning);
  return plan.planned_chunks > 1 ? plan.planned_chunks * s.c_out * (s.patch_size() + 1) : 0;
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* workspace, Stream stream) {
  conv2d_forward(s, x, w, b, y, workspace, stream, Conv2dEpilogue{});
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                    float* /*workspace*/, Stream stream, const Conv2dEpilogue& epilogue,
                    const Conv2dTuning& tuning) {
  constexpr const char* kOp = "cuda::conv2d_forward";
  const char* const name = launch_name(kForwardNames, tuning.precision);  // bad value: throws
  check_sizes(kOp, s);
  const int64_t rows = s.n * s.out_pixels();
  if (rows == 0 || s.c_out == 0) return;
  GatherGemm p{};
  p.src = x;
  p.weights = w;
  p.out = y;
  p.bias = b;
  p.m_size = int(rows);
  p.n_size = int(s.c_out);
  p.k_size = int(s.patch_size());
  p.grid_pixels = make_divmod(s.out_pixels());
  p.grid_w = make_divmod(s.w_out);
  p.row_scale = int(s.stride_h);
  p.row_offset = -int(s.pad_top);
  p.col_scale = int(s.stride_w);
  p.col_offset = -int(s.pad_left);
  p.src_image = int(s.c_in * s.h_in * s.w_in);
  p.src_h = int(s.h_in);
  p.src_w = int(s.w_in);
  p.div_h = p.div_w = 1;
  p.taps = make_divmod(s.k_h * s.k_w);
  p.tap_w = make_divmod(s.k_w);
  p.tap_sign = 1;
  p.a_channel = int(s.h_in * s.w_in);
  p.b_channel = int(s.k_h * s.k_w);  // channel·taps + tap = k: w's row (C_out, K) ...
  p.b_column = int(s.patch_size());  // ... and one row per output channel
  p.relu = epilogue.relu;
  p.accumulate = false;
  launch_gather(name, tuning, p, /*strided=*/false, stream);
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                          GradMode mode, float* /*workspace*/, Stream stream,
                          const Conv2dTuning& tuning) {
  constexpr const char* kOp = "cuda::conv2d_backward_data";
  const char* const name = launch_name(kBackwardDataNames, tuning.precision);  // bad value: throws
  check_sizes(kOp, s);
  const int64_t rows = s.n * s.h_in * s.w_in;
  if (rows == 0 || s.c_in == 0) return;
  GatherGemm p{};
  p.src = dy;
  p.weights = w;
  p.out = dx;
  p.bias = nullptr;
  p.m_size = int(rows);
  p.n_size = int(s.c_in);
  p.k_size = int(s.c_out * s.k_h * s.k_w);
  p.grid_pixels = make_divmod(s.h_in * s.w_in);
  p.grid_w = make_divmod(s.w_in);
  // Input pixel (ih, iw) meets output pixel oh through tap ki when oh·s_h - pad_top + ki = ih.
  p.row_scale = 1;
  p.row_offset = int(s.pad_top);
  p.col_scale = 1;
  p.col_offset = int(s.pad_left);
  p.src_image = int(s.c_out * s.out_pixels());
  p.src_h = int(s.h_out);
  p.src_w = int(s.w_out);
  p.div_h = int(s.stride_h);
  p.div_w = int(s.stride_w);
  p.taps = make_divmod(s.k_h * s.k_w);
  p.tap_w = make_divmod(s.k_w);
  p.tap_sign = -1;
  p.a_channel = int(s.out_pixels());
  p.b_channel = int(s.c_in * s.k_h * s.k_w);  // w[co, ci, tap] = co·C_in·taps + tap ...
  p.b_column = int(s.k_h * s.k_w);            // ... + ci·taps
  p.relu = false;
  p.accumulate = mode == GradMode::Accumulate;
  launch_gather(name, tuning, p, s.stride_h > 1 || s.stride_w > 1, stream);
}

void conv2d_backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                            float* db, GradMode mode, float* workspace, Stream stream,
                            const Conv2dTuning& tuning) {
  constexpr const char* kOp = "cuda::conv2d_backward_filter";
  const char* const name = launch_name(kBackwardFilterNames, tuning.precision);
  check_sizes(kOp, s);
  const int64_t patch = s.patch_size();
  const int64_t columns = patch + (db != nullptr ? 1 : 0);
  if (s.c_out == 0 || columns == 0) return;
  const FilterPlan plan = plan_filter(s, tuning);
  const int64_t pixels = s.n * s.out_pixels();
  if (plan.chunks > 1 && workspace == nullptr)
    fail(kOp, ": needs a workspace of ", conv2d_workspace_elements(s, tuning), " floats");
  if (pixels + plan.chunk_pixels > kMaxElements || plan.chunks * s.c_out * columns > kMaxElements)
    fail(kOp, ": ", pixels, " output pixels in ", plan.chunks,
         " chunks; the CUDA kernels index with int (< 2^31)");

  FilterGemm p{};
  p.x = x;
  p.dy = dy;
  p.dw = dw;
  p.db = db;
  p.partial = plan.chunks > 1 ? workspace : nullptr;
  p.c_out = int(s.c_out);
  p.patch = int(patch);
  p.columns = int(columns);
  p.pixels = int(pixels);
  p.chunk_pixels = int(plan.chunk_pixels);
  p.out_pixels = make_divmod(std::max<int64_t>(1, s.out_pixels()));
  p.w_out = make_divmod(std::max<int64_t>(1, s.w_out));
  p.stride_h = int(s.stride_h);
  p.stride_w = int(s.stride_w);
  p.pad_top = int(s.pad_top);
  p.pad_left = int(s.pad_left);
  p.x_image = int(s.c_in * s.h_in * s.w_in);
  p.h_in = int(s.h_in);
  p.w_in = int(s.w_in);
  p.x_channel = int(s.h_in * s.w_in);
  p.dy_image = int(s.c_out * s.out_pixels());
  p.taps = make_divmod(s.k_h * s.k_w);
  p.tap_w = make_divmod(s.k_w);
  p.accumulate = mode == GradMode::Accumulate;

  switch (tuning.precision) {
    case MathPrecision::FP32:
      launch_filter<MathPrecision::FP32>(name, plan.tiles, p, plan.chunks, stream);
      break;
    case MathPrecision::TF32:
      launch_filter<MathPrecision::TF32>(name, plan.tiles, p, plan.chunks, stream);
      break;
    case MathPrecision::BF16:
      launch_filter<MathPrecision::BF16>(name, plan.tiles, p, plan.chunks, stream);
      break;
  }
  if (plan.chunks <= 1) return;
  const int64_t elements = s.c_out * columns;
  launch("cuda::conv2d_backward_filter (chunk sums)", finish_filter_kernel,
         dim3(blocks_for(elements, kFinishLanes, 0x7fffffffu)), dim3(kFinishLanes * kFinishWarps),
         0, stream, workspace, int(plan.chunks), int(s.c_out), int(patch), int(columns), dw, db,
         mode == GradMode::Accumulate);
}

}  // namespace polytask::kernels::cuda
