// Handwritten SGEMM: C = alpha · op(A) · op(B) + beta · C (+ column bias), row-major.
//
// The design is the classic register-blocked shared-memory SGEMM (siboehm/SGEMM_CUDA kernels
// 5-6, and the "two 4-wide fragments per thread" layout of the well-known sgemm_v3 kernels):
//
//   - a block computes a BM x BN tile of C, walking k in slabs of BK;
//   - each slab of op(A) is stored k-major in shared memory (As[p][i], i.e. transposed for an
//     untransposed A) and op(B) likewise (Bs[p][j]), so the inner product loop reads both
//     operands with float4 loads along m and n;
//   - each thread owns TM x TN outputs, split into TM/4 x TN/4 fragments of 4x4 spaced BM/2
//     apart (for TM = 8): neighbouring threads then read consecutive float4s of a shared row,
//     so each 8-thread phase of a 128-bit shared load covers 32 distinct banks, where
//     contiguous 8-wide fragments would leave every other float4 of the phase on the same
//     banks (a 2-way conflict);
//   - global loads of slab t+1 go to registers before slab t is multiplied and are stored to
//     the other of two shared buffers afterwards, so their latency hides behind the FMAs and
//     one barrier per slab suffices;
//   - global loads are float4 when the operand allows it (16-byte-aligned base, row stride a
//     multiple of 4), a template switch chosen at run time; edges are zero-filled so any
//     m, n, k works, and the epilogue bounds-checks its stores.
//
// Work: 2·m·n·k FLOPs; at least 4·(m·k + k·n + m·n) bytes of traffic (plus m·n·4 more read
// when beta != 0). Each operand element is fetched from global memory n/BN (A) or m/BM (B)
// times; in the 128x128 tile a thread does 8·8 = 64 FMAs per 2 + 2 shared float4 loads.
//
// Determinism: every output element is one thread's fmaf chain over p = 0..k-1 in increasing
// order (zero padding adds exact zeros), so the result is bit-identical for every tile choice
// and load path, run after run. There is no split-K and no atomic.
//
// GemmOptions::precision = TF32 or BF16 selects the tensor-core kernel further down
// (tensor_gemm_kernel): the same tiling plan with warps of wmma tiles; see its comment.
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_core.h"
#include "kernels/error.h"
#include "kernels/gemm.h"

namespace polytask::kernels::cuda {

namespace {

template <int BM, int BN, int BK, int TM, int TN, int MinBlocksPerSm>
struct TileConfig {
  static constexpr int kBM = BM, kBN = BN, kBK = BK, kTM = TM, kTN = TN;
  static constexpr int kMinBlocksPerSm = MinBlocksPerSm;
  static constexpr int kThreadsN = BN / TN;  // threads along a row of the block tile
  static constexpr int kThreads = (BM / TM) * kThreadsN;
  // A thread's outputs are TM/4 (TN/4) fragments of 4 rows (columns), this far apart.
  static constexpr int kFragStrideM = BM / (TM / 4);
  static constexpr int kFragStrideN = BN / (TN / 4);
  static_assert(TM % 4 == 0 && TN % 4 == 0, "fragments are float4-wide");
  static_assert(BM % TM == 0 && BN % TN == 0 && BK % 4 == 0, "tile shape");
  static_assert(kThreads % 32 == 0, "whole warps");
};

// Two 256-thread blocks per SM cap a thread at 128 registers; left alone ptxas takes ~130,
// which rounds up past half the register file and leaves one block (8 warps) per SM.
using LargeTiles = TileConfig<128, 128, 8, 8, 8, 2>;  // 256 threads
using MediumTiles = TileConfig<64, 64, 16, 4, 4, 1>;  // 256 threads
// Few, long-k blocks: a deep slab keeps the number of barrier/latency rounds per block low.
using SmallTiles = TileConfig<32, 32, 32, 4, 4, 1>;  // 64 threads

// Shared rows are padded by one float4. The transposing stores (an untransposed A, a
// transposed B) write columns of the tile: one warp writes the same column of rows 4 apart,
// and an unpadded row (BM = 32·j floats) puts all of them in one bank. Padded, rows 4 apart
// sit 16 banks apart: conflict-free for the 128x128 tile, 2- and 4-way for the deeper slabs
// of the smaller ones. The pad keeps every row start 16-byte aligned for float4 access.
constexpr int kPad = 4;

// The epilogue's multiply and add are rounded separately, never contracted into an FMA at
// the compiler's discretion, so every instantiation computes the same bits.
__device__ __forceinline__ float mul_rn(float x, float y) { return __fmul_rn(x, y); }
__device__ __forceinline__ float add_rn(float x, float y) { return __fadd_rn(x, y); }

// One load unit of a staged operand: kWidth adjacent floats of a stored row, as one float4 when
// Vec, or element-wise with zeros past the operand's ragged edge (`in_row` false: the whole
// unit lies below the last row; `cols_left`: elements of the row left from ptr on).
template <bool Vec>
__device__ __forceinline__ void load_unit(const float* ptr, bool in_row, int cols_left,
                                          float (&unit)[Vec ? 4 : 1]) {
  constexpr int kWidth = Vec ? 4 : 1;
  if (in_row && cols_left >= kWidth) {
    if constexpr (Vec) {
      const float4 v = *reinterpret_cast<const float4*>(ptr);
      unit[0] = v.x;
      unit[1] = v.y;
      unit[2] = v.z;
      unit[3] = v.w;
    } else {
      unit[0] = *ptr;
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < kWidth; ++e) unit[e] = (in_row && e < cols_left) ? ptr[e] : 0.0f;
}

// Stages one BK-deep slab of an operand in registers and stores it to shared memory.
//
// The operand is seen as element (x, p): x runs along m (for A) or n (for B), p along k.
// KContiguous says consecutive p are adjacent in memory (untransposed A, transposed B): then
// element (x, p) is at src[x·ld + p]; otherwise at src[p·ld + x]. Either way a load unit is
// kWidth adjacent floats of one stored row, and consecutive threads take consecutive units,
// so a warp reads whole 32-byte sectors.
template <int BX, int BK, int Threads, bool KContiguous, bool Vec>
struct SlabLoader {
  static constexpr int kWidth = Vec ? 4 : 1;
  static constexpr int kRowLength = KContiguous ? BK : BX;  // floats of one stored row in the slab
  static constexpr int kUnitsPerRow = kRowLength / kWidth;
  static constexpr int kUnits = BX * BK / kWidth;
  static constexpr int kUnitsPerThread = (kUnits + Threads - 1) / Threads;

  float staged[kUnitsPerThread][kWidth];

  // (x0, p0): the slab's origin; x_end, p_end: the operand's extent (elements beyond are 0).
  __device__ __forceinline__ void load(const float* __restrict__ src, int64_t ld, int x0, int p0,
                                       int x_end, int p_end, int tid) {
#pragma unroll
    for (int u = 0; u < kUnitsPerThread; ++u) {
      const int unit = tid + u * Threads;
      if (kUnits % Threads != 0 && unit >= kUnits) continue;
      const int along = (unit % kUnitsPerRow) * kWidth;  // offset within the stored row
      const int across = unit / kUnitsPerRow;            // which stored row
      const int row = (KContiguous ? x0 : p0) + across;
      const int col = (KContiguous ? p0 : x0) + along;
      const int row_end = KContiguous ? x_end : p_end;
      const int col_end = KContiguous ? p_end : x_end;
      load_unit<Vec>(src + int64_t(row) * ld + col, row < row_end, col_end - col, staged[u]);
    }
  }

  __device__ __forceinline__ void store(float (&tile)[BK][BX + kPad], int tid) const {
#pragma unroll
    for (int u = 0; u < kUnitsPerThread; ++u) {
      const int unit = tid + u * Threads;
      if (kUnits % Threads != 0 && unit >= kUnits) continue;
      const int along = (unit % kUnitsPerRow) * kWidth;
      const int across = unit / kUnitsPerRow;
      if constexpr (KContiguous) {
        // The unit runs along k: it becomes a column of the k-major tile.
#pragma unroll
        for (int e = 0; e < kWidth; ++e) tile[along + e][across] = staged[u][e];
      } else if constexpr (Vec) {
        *reinterpret_cast<float4*>(&tile[across][along]) =
            make_float4(staged[u][0], staged[u][1], staged[u][2], staged[u][3]);
      } else {
        tile[across][along] = staged[u][0];
      }
    }
  }
};

// m, n, k fit in int (checked by the launcher); offsets that multiply by a row stride are
// 64-bit. k here is 0 when alpha == 0, so A and B are then never read.
template <class Tiles, bool TransA, bool TransB, bool VecA, bool VecB>
__global__ void __launch_bounds__(Tiles::kThreads, Tiles::kMinBlocksPerSm)
    sgemm_kernel(int m, int n, int k, float alpha, const float* __restrict__ a, int64_t lda,
                 const float* __restrict__ b, int64_t ldb, float beta, float* __restrict__ c,
                 int64_t ldc, const float* __restrict__ bias, bool vector_c) {
  constexpr int BM = Tiles::kBM, BN = Tiles::kBN, BK = Tiles::kBK;
  constexpr int TM = Tiles::kTM, TN = Tiles::kTN, kThreads = Tiles::kThreads;
  using LoaderA = SlabLoader<BM, BK, kThreads, !TransA, VecA>;
  using LoaderB = SlabLoader<BN, BK, kThreads, TransB, VecB>;

  alignas(16) __shared__ float as[2][BK][BM + kPad];
  alignas(16) __shared__ float bs[2][BK][BN + kPad];

  // Grouped block order: blocks that run together cover a group of 8 tile rows, so the
  // slabs of B they read stay in L2 across the group instead of streaming all of B per row.
  constexpr int kGroupRows = 8;
  const int tiles_m = (m + BM - 1) / BM, tiles_n = (n + BN - 1) / BN;
  const int block = int(blockIdx.x);
  const int group = block / (kGroupRows * tiles_n);
  const int first_tile_m = group * kGroupRows;
  const int group_rows = tiles_m - first_tile_m < kGroupRows ? tiles_m - first_tile_m : kGroupRows;
  const int in_group = block % (kGroupRows * tiles_n);
  const int m0 = (first_tile_m + in_group % group_rows) * BM;
  const int n0 = (in_group / group_rows) * BN;

  const int tid = int(threadIdx.x);
  const int thread_n = tid % Tiles::kThreadsN;
  const int thread_m = tid / Tiles::kThreadsN;

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  LoaderA load_a;
  LoaderB load_b;
  const int slabs = (k + BK - 1) / BK;
  if (slabs > 0) {
    load_a.load(a, lda, m0, 0, m, k, tid);
    load_b.load(b, ldb, n0, 0, n, k, tid);
    load_a.store(as[0], tid);
    load_b.store(bs[0], tid);
  }
  __syncthreads();

  for (int slab = 0; slab < slabs; ++slab) {
    const int buffer = slab & 1;
    const bool has_next = slab + 1 < slabs;
    if (has_next) {
      load_a.load(a, lda, m0, (slab + 1) * BK, m, k, tid);
      load_b.load(b, ldb, n0, (slab + 1) * BK, n, k, tid);
    }
#pragma unroll
    for (int p = 0; p < BK; ++p) {
      float frag_a[TM], frag_b[TN];
#pragma unroll
      for (int f = 0; f < TM / 4; ++f) {
        const float4 v = *reinterpret_cast<const float4*>(
            &as[buffer][p][thread_m * 4 + f * Tiles::kFragStrideM]);
        frag_a[f * 4 + 0] = v.x;
        frag_a[f * 4 + 1] = v.y;
        frag_a[f * 4 + 2] = v.z;
        frag_a[f * 4 + 3] = v.w;
      }
#pragma unroll
      for (int f = 0; f < TN / 4; ++f) {
        const float4 v = *reinterpret_cast<const float4*>(
            &bs[buffer][p][thread_n * 4 + f * Tiles::kFragStrideN]);
        frag_b[f * 4 + 0] = v.x;
        frag_b[f * 4 + 1] = v.y;
        frag_b[f * 4 + 2] = v.z;
        frag_b[f * 4 + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(frag_a[i], frag_b[j], acc[i][j]);
    }
    // The other buffer was last read before the previous barrier, so it is free to fill now;
    // the barrier below then publishes it and retires this one.
    if (has_next) {
      load_a.store(as[buffer ^ 1], tid);
      load_b.store(bs[buffer ^ 1], tid);
    }
    __syncthreads();
  }

  // Epilogue: C = alpha·acc (+ beta·C) (+ bias), C read only when beta != 0. The float4 and
  // scalar paths differ only in how they move data; the arithmetic below is shared.
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + thread_m * 4 + (i / 4) * Tiles::kFragStrideM + i % 4;
    if (row >= m) continue;
    float* c_row = c + int64_t(row) * ldc;
#pragma unroll
    for (int f = 0; f < TN / 4; ++f) {
      const int col = n0 + thread_n * 4 + f * Tiles::kFragStrideN;
      const bool whole = vector_c && col + 4 <= n;
      float old[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (beta != 0.0f) {
        if (whole) {
          const float4 v = *reinterpret_cast<const float4*>(c_row + col);
          old[0] = v.x;
          old[1] = v.y;
          old[2] = v.z;
          old[3] = v.w;
        } else {
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (col + e < n) old[e] = c_row[col + e];
        }
      }
      float out[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float value = mul_rn(alpha, acc[i][f * 4 + e]);
        if (beta != 0.0f) value = fmaf(beta, old[e], value);
        if (bias != nullptr && col + e < n) value = add_rn(value, bias[col + e]);
        out[e] = value;
      }
      if (whole) {
        *reinterpret_cast<float4*>(c_row + col) = make_float4(out[0], out[1], out[2], out[3]);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (col + e < n) c_row[col + e] = out[e];
      }
    }
  }
}

// ---- the tensor-core kernel (GemmOptions::precision = TF32 or BF16) ---------------------------
//
// The SGEMM's plan (grouped block order, k in slabs, the next slab's global loads staged in
// registers while the current one is multiplied, two shared buffers, one barrier per slab) with
// the arithmetic on the tensor cores: each warp owns a WarpM x WarpN patch of the block tile as
// 16x16 FP32 wmma accumulators, and operands are rounded to TF32/BF16 as they are staged
// (kernels/cuda/tensor_core.h).
//
// Shared slabs keep each operand in its stored orientation, so staging stores are contiguous
// along rows whatever the layout: op(A) untransposed is stored (m, k), a row_major matrix_a;
// transposed it is stored (k, m), a col_major one. op(B): (k, n) row_major, or (n, k) col_major.
// A slab is 16 deep in k (two TF32 mma steps, one BF16 step: a 32-deep BF16 slab doubles the
// staging registers and spills in the 128x128 tile); rows are padded by 16 bytes (wmma wants
// ldm to be a multiple of 16 bytes; the pad also puts the 8 rows of each 16-byte-wide fragment
// load on 8 distinct groups of banks).
//
// Epilogue: a warp stores one 16-row strip of its accumulators into its own staging tile
// (over the retired slabs); its lanes then apply alpha, beta·C and the bias with the SGEMM
// epilogue's exact arithmetic and write rows of C, consecutive lanes on consecutive columns.
//
// Determinism: an output element is one accumulator element fed the mma steps over k in
// increasing order (zero padding adds exact zeros) — the same sequence for every tile size and
// load path, so every choice gives the same bits, run after run. No split-K, no atomics. How a
// single mma adds its 8 (TF32) or 16 (BF16) products into the accumulator is the hardware's
// business (unspecified order and internal precision), hence tolerances, not bits, against the
// CPU and the emulator.
//
// Work: 2·m·n·k FLOPs on the tensor cores; traffic as the SGEMM. Per mma step a Large-tile warp
// loads 4 + 2 fragments for 8 mma.

template <int BM, int BN, int WarpsM, int WarpsN, int MinBlocksPerSm>
struct TensorTiles {
  static constexpr int kBM = BM, kBN = BN;
  static constexpr int kWarpsN = WarpsN, kWarps = WarpsM * WarpsN;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kMinBlocksPerSm = MinBlocksPerSm;
  static constexpr int kWarpM = BM / WarpsM, kWarpN = BN / WarpsN;  // a warp's patch of C
  static constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 16;
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "whole 16x16 accumulators");
};
// Same block tiles as LargeTiles / MediumTiles / SmallTiles, so pick_tiles serves both.
using LargeTensorTiles = TensorTiles<128, 128, 2, 4, 2>;  // 8 warps of 64x32 (4x2 accumulators)
using MediumTensorTiles = TensorTiles<64, 64, 2, 2, 4>;   // 4 warps of 32x32 (2x2)
using SmallTensorTiles = TensorTiles<32, 32, 2, 2, 4>;    // 4 warps of 16x16 (1x1)

// Stages a Rows x Cols block of a stored operand (row-major, row stride ld): element (r, c) is
// src[(row0 + r)·ld + col0 + c], 0 where row0 + r >= row_end or col0 + c >= col_end. load()
// reads it into registers; store() writes it, rounded for the tensor cores, to shared rows of
// kLd elements. A unit is kWidth adjacent elements of a row; consecutive threads take
// consecutive units, so a warp reads whole 32-byte sectors.
template <MathPrecision P, int Rows, int Cols, int Threads, bool Vec>
struct TensorSlabLoader {
  using Op = tensor_core::Operand<P>;
  using Shared = typename Op::Shared;
  static constexpr int kLd = Cols + Op::kPad;
  static constexpr int kWidth = Vec ? 4 : 1;
  static constexpr int kUnitsPerRow = Cols / kWidth;
  static constexpr int kUnits = Rows * kUnitsPerRow;
  static constexpr int kUnitsPerThread = (kUnits + Threads - 1) / Threads;
  static_assert(Cols % 4 == 0, "rows hold whole float4 units");

  float staged[kUnitsPerThread][kWidth];

  __device__ __forceinline__ void load(const float* __restrict__ src, int64_t ld, int row0,
                                       int col0, int row_end, int col_end, int tid) {
#pragma unroll
    for (int u = 0; u < kUnitsPerThread; ++u) {
      const int unit = tid + u * Threads;
      if (kUnits % Threads != 0 && unit >= kUnits) continue;
      const int row = row0 + unit / kUnitsPerRow;
      const int col = col0 + (unit % kUnitsPerRow) * kWidth;
      load_unit<Vec>(src + int64_t(row) * ld + col, row < row_end, col_end - col, staged[u]);
    }
  }

  __device__ __forceinline__ void store(Shared (&tile)[Rows][kLd], int tid) const {
#pragma unroll
    for (int u = 0; u < kUnitsPerThread; ++u) {
      const int unit = tid + u * Threads;
      if (kUnits % Threads != 0 && unit >= kUnits) continue;
      const int row = unit / kUnitsPerRow;
      const int col = (unit % kUnitsPerRow) * kWidth;
      if constexpr (Vec)
        tensor_core::store4<P>(&tile[row][col], staged[u][0], staged[u][1], staged[u][2],
                               staged[u][3]);
      else
        tile[row][col] = Op::convert(staged[u][0]);
    }
  }
};

// The shared-memory shapes of one instantiation: slabs in stored orientation (see above).
template <MathPrecision P, class Tiles, bool TransA, bool TransB>
struct TensorGemmShapes {
  using Op = tensor_core::Operand<P>;
  static constexpr int kBK = 16;  // two TF32 mma steps or one BF16 step
  static constexpr int kARows = TransA ? kBK : Tiles::kBM, kACols = TransA ? Tiles::kBM : kBK;
  static constexpr int kBRows = TransB ? Tiles::kBN : kBK, kBCols = TransB ? kBK : Tiles::kBN;
  static constexpr int kALd = kACols + Op::kPad, kBLd = kBCols + Op::kPad;
  static constexpr int kStageLd = Tiles::kWarpN + 4;  // floats; 16-byte multiple
  static_assert(kBK % Op::kK == 0, "whole mma steps per slab");
};

template <MathPrecision P, class Tiles, bool TransA, bool TransB>
union TensorGemmShared {
  using Shapes = TensorGemmShapes<P, Tiles, TransA, TransB>;
  using Shared = typename tensor_core::Operand<P>::Shared;
  struct {
    alignas(128) Shared a[2][Shapes::kARows][Shapes::kALd];
    alignas(128) Shared b[2][Shapes::kBRows][Shapes::kBLd];
  } slabs;
  alignas(128) float stage[Tiles::kWarps][16][Shapes::kStageLd];  // per warp, after the loop
};

// One block's tile of tensor_gemm_kernel (below), which calls it only where kCompiled<P>.
template <MathPrecision P, class Tiles, bool TransA, bool TransB, bool Vec>
__device__ __forceinline__ void tensor_gemm_block(int m, int n, int k, float alpha,
                                                  const float* __restrict__ a, int64_t lda,
                                                  const float* __restrict__ b, int64_t ldb,
                                                  float beta, float* __restrict__ c, int64_t ldc,
                                                  const float* __restrict__ bias) {
  namespace wmma = nvcuda::wmma;
  using Op = tensor_core::Operand<P>;
  using Shapes = TensorGemmShapes<P, Tiles, TransA, TransB>;
  using LayoutA = std::conditional_t<TransA, wmma::col_major, wmma::row_major>;
  using LayoutB = std::conditional_t<TransB, wmma::col_major, wmma::row_major>;
  using LoaderA = TensorSlabLoader<P, Shapes::kARows, Shapes::kACols, Tiles::kThreads, Vec>;
  using LoaderB = TensorSlabLoader<P, Shapes::kBRows, Shapes::kBCols, Tiles::kThreads, Vec>;
  constexpr int BM = Tiles::kBM, BN = Tiles::kBN, BK = Shapes::kBK;
  constexpr int kFragsM = Tiles::kFragsM, kFragsN = Tiles::kFragsN;

  __shared__ TensorGemmShared<P, Tiles, TransA, TransB> smem;

  // Grouped block order, as in sgemm_kernel.
  constexpr int kGroupRows = 8;
  const int tiles_m = (m + BM - 1) / BM, tiles_n = (n + BN - 1) / BN;
  const int block = int(blockIdx.x);
  const int group = block / (kGroupRows * tiles_n);
  const int first_tile_m = group * kGroupRows;
  const int group_rows = tiles_m - first_tile_m < kGroupRows ? tiles_m - first_tile_m : kGroupRows;
  const int in_group = block % (kGroupRows * tiles_n);
  const int m0 = (first_tile_m + in_group % group_rows) * BM;
  const int n0 = (in_group / group_rows) * BN;

  const int tid = int(threadIdx.x);
  const int warp = tid / 32, lane = tid % 32;
  const int warp_m0 = (warp / Tiles::kWarpsN) * Tiles::kWarpM;  // the warp's patch in the tile
  const int warp_n0 = (warp % Tiles::kWarpsN) * Tiles::kWarpN;

  tensor_core::Accumulator<P> acc[kFragsM][kFragsN];
#pragma unroll
  for (int i = 0; i < kFragsM; ++i)
#pragma unroll
    for (int j = 0; j < kFragsN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  LoaderA load_a;
  LoaderB load_b;
  // Slab origins in each operand's stored coordinates.
  const auto load = [&](int k0) {
    if constexpr (TransA)
      load_a.load(a, lda, k0, m0, k, m, tid);
    else
      load_a.load(a, lda, m0, k0, m, k, tid);
    if constexpr (TransB)
      load_b.load(b, ldb, n0, k0, n, k, tid);
    else
      load_b.load(b, ldb, k0, n0, k, n, tid);
  };
  const auto store = [&](int buffer) {
    load_a.store(smem.slabs.a[buffer], tid);
    load_b.store(smem.slabs.b[buffer], tid);
  };

  const int slabs = (k + BK - 1) / BK;
  if (slabs > 0) {
    load(0);
    store(0);
  }
  __syncthreads();

  for (int slab = 0; slab < slabs; ++slab) {
    const int buffer = slab & 1;
    const bool has_next = slab + 1 < slabs;
    if (has_next) load((slab + 1) * BK);
#pragma unroll
    for (int kk = 0; kk < BK; kk += Op::kK) {
      tensor_core::FragmentA<P, LayoutA> frag_a[kFragsM];
      tensor_core::FragmentB<P, LayoutB> frag_b[kFragsN];
#pragma unroll
      for (int i = 0; i < kFragsM; ++i) {
        const int row = warp_m0 + i * 16;
        const auto* tile =
            TransA ? &smem.slabs.a[buffer][kk][row] : &smem.slabs.a[buffer][row][kk];
        wmma::load_matrix_sync(frag_a[i], tile, Shapes::kALd);
      }
#pragma unroll
      for (int j = 0; j < kFragsN; ++j) {
        const int col = warp_n0 + j * 16;
        const auto* tile =
            TransB ? &smem.slabs.b[buffer][col][kk] : &smem.slabs.b[buffer][kk][col];
        wmma::load_matrix_sync(frag_b[j], tile, Shapes::kBLd);
      }
#pragma unroll
      for (int i = 0; i < kFragsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragsN; ++j)
          wmma::mma_sync(acc[i][j], frag_a[i], frag_b[j], acc[i][j]);
    }
    // The other buffer was last read before the previous barrier: free to fill.
    if (has_next) store(buffer ^ 1);
    __syncthreads();
  }

  // Epilogue, one 16-row strip of the warp's patch at a time, through the warp's own staging
  // tile (the loop's last barrier retired the slabs under it). The arithmetic is sgemm_kernel's.
  float(*stage)[Shapes::kStageLd] = smem.stage[warp];
#pragma unroll
  for (int i = 0; i < kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < kFragsN; ++j)
      wmma::store_matrix_sync(&stage[0][j * 16], acc[i][j], Shapes::kStageLd, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 16 * Tiles::kWarpN; e += 32) {
      const int r = e / Tiles::kWarpN, col_in_patch = e % Tiles::kWarpN;
      const int row = m0 + warp_m0 + i * 16 + r, col = n0 + warp_n0 + col_in_patch;
      if (row >= m || col >= n) continue;
      float* const dst = c + int64_t(row) * ldc + col;
      float value = mul_rn(alpha, stage[r][col_in_patch]);
      if (beta != 0.0f) value = fmaf(beta, *dst, value);
      if (bias != nullptr) value = add_rn(value, bias[col]);
      *dst = value;
    }
    __syncwarp();  // every lane has read the strip before the next one overwrites it
  }
}

template <MathPrecision P, class Tiles, bool TransA, bool TransB, bool Vec>
__global__ void __launch_bounds__(Tiles::kThreads, Tiles::kMinBlocksPerSm)
    tensor_gemm_kernel(int m, int n, int k, float alpha, const float* __restrict__ a, int64_t lda,
                       const float* __restrict__ b, int64_t ldb, float beta, float* __restrict__ c,
                       int64_t ldc, const float* __restrict__ bias) {
  if constexpr (tensor_core::kCompiled<P>)
    tensor_gemm_block<P, Tiles, TransA, TransB, Vec>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                                                     bias);
  else
    tensor_core::unreachable();
}

// The launch geometry depends only on the problem; the kernel's arguments are these.
struct LaunchArgs {
  int m, n, k;
  float alpha;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float beta;
  float* c;
  int64_t ldc;
  const float* bias;
};

bool vectorizable(const void* ptr, int64_t ld) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && ld % 4 == 0;
}

// Calls f(std::true_type{}) or f(std::false_type{}): a run-time flag to a template argument.
template <class F>
void with_flag(bool flag, F&& f) {
  if (flag)
    f(std::true_type{});
  else
    f(std::false_type{});
}

template <class Tiles>
const char* op_name() {
  if constexpr (std::is_same_v<Tiles, LargeTiles>) return "cuda::gemm (128x128 tiles)";
  if constexpr (std::is_same_v<Tiles, MediumTiles>) return "cuda::gemm (64x64 tiles)";
  return "cuda::gemm (32x32 tiles)";
}

template <class Tiles>
int64_t tile_count(int64_t m, int64_t n) {
  return ((m + Tiles::kBM - 1) / Tiles::kBM) * ((n + Tiles::kBN - 1) / Tiles::kBN);
}

template <class Tiles, bool TransA, bool TransB>
void launch_tiles(const LaunchArgs& p, Stream stream) {
  const int64_t blocks = tile_count<Tiles>(p.m, p.n);
  if (blocks > std::numeric_limits<int>::max())
    fail("cuda::gemm: ", p.m, "x", p.n, " needs ", blocks, " blocks, more than a grid holds");
  // A slab of A is read along k (untransposed) or m (transposed); float4 needs the stored
  // rows to start on 16-byte boundaries.
  const bool vec_a = vectorizable(p.a, p.lda), vec_b = vectorizable(p.b, p.ldb);
  const bool vec_c = vectorizable(p.c, p.ldc);
  with_flag(vec_a, [&](auto va) {
    with_flag(vec_b, [&](auto vb) {
      launch(op_name<Tiles>(),
             sgemm_kernel<Tiles, TransA, TransB, decltype(va)::value, decltype(vb)::value>,
             dim3(unsigned(blocks)), dim3(Tiles::kThreads), 0, stream, p.m, p.n, p.k, p.alpha, p.a,
             p.lda, p.b, p.ldb, p.beta, p.c, p.ldc, p.bias, vec_c);
    });
  });
}

// H100 and H200 have 132 SMs. A grid smaller than that leaves SMs idle for the whole kernel,
// so Auto takes the largest tile whose grid still covers them (bigger tiles reuse each loaded
// element more); when none does, the smallest, which spreads the work over the most SMs.
// The choice never changes the result (see the top of the file), only the speed.
constexpr int64_t kFillBlocks = 132;

GemmTiles pick_tiles(int64_t m, int64_t n) {
  if (tile_count<LargeTiles>(m, n) >= kFillBlocks) return GemmTiles::Large;
  if (tile_count<MediumTiles>(m, n) >= kFillBlocks) return GemmTiles::Medium;
  return GemmTiles::Small;
}

template <MathPrecision P, class Tiles>
const char* tensor_op_name() {
  constexpr bool kTf32 = P == MathPrecision::TF32;
  if constexpr (std::is_same_v<Tiles, LargeTensorTiles>)
    return kTf32 ? "cuda::gemm (TF32 tensor cores, 128x128 tiles)"
                 : "cuda::gemm (BF16 tensor cores, 128x128 tiles)";
  if constexpr (std::is_same_v<Tiles, MediumTensorTiles>)
    return kTf32 ? "cuda::gemm (TF32 tensor cores, 64x64 tiles)"
                 : "cuda::gemm (BF16 tensor cores, 64x64 tiles)";
  return kTf32 ? "cuda::gemm (TF32 tensor cores, 32x32 tiles)"
               : "cuda::gemm (BF16 tensor cores, 32x32 tiles)";
}

template <MathPrecision P, class Tiles, bool TransA, bool TransB>
void launch_tensor_tiles(const LaunchArgs& p, Stream stream) {
  const int64_t blocks = tile_count<Tiles>(p.m, p.n);
  if (blocks > std::numeric_limits<int>::max())
    fail("cuda::gemm: ", p.m, "x", p.n, " needs ", blocks, " blocks, more than a grid holds");
  // One switch for both operands (float4 staging needs 16-byte-aligned rows): half the
  // instantiations of a switch per operand, for a path that only a misaligned caller leaves.
  const bool vec = vectorizable(p.a, p.lda) && vectorizable(p.b, p.ldb);
  with_flag(vec, [&](auto v) {
    launch(tensor_op_name<P, Tiles>(),
           tensor_gemm_kernel<P, Tiles, TransA, TransB, decltype(v)::value>,
           dim3(unsigned(blocks)), dim3(Tiles::kThreads), 0, stream, p.m, p.n, p.k, p.alpha, p.a,
           p.lda, p.b, p.ldb, p.beta, p.c, p.ldc, p.bias);
  });
}

template <MathPrecision P, bool TransA, bool TransB>
void launch_tensor(GemmTiles tiles, const LaunchArgs& p, Stream stream) {
  switch (tiles) {
    case GemmTiles::Large:
      return launch_tensor_tiles<P, LargeTensorTiles, TransA, TransB>(p, stream);
    case GemmTiles::Medium:
      return launch_tensor_tiles<P, MediumTensorTiles, TransA, TransB>(p, stream);
    case GemmTiles::Small:
    case GemmTiles::Auto:
      return launch_tensor_tiles<P, SmallTensorTiles, TransA, TransB>(p, stream);
  }
}

template <bool TransA, bool TransB>
void launch_layout(GemmTiles tiles, MathPrecision precision, const LaunchArgs& p, Stream stream) {
  if (tiles == GemmTiles::Auto) tiles = pick_tiles(p.m, p.n);
  switch (precision) {
    case MathPrecision::FP32:
      switch (tiles) {
        case GemmTiles::Large:
          return launch_tiles<LargeTiles, TransA, TransB>(p, stream);
        case GemmTiles::Medium:
          return launch_tiles<MediumTiles, TransA, TransB>(p, stream);
        case GemmTiles::Small:
        case GemmTiles::Auto:
          return launch_tiles<SmallTiles, TransA, TransB>(p, stream);
      }
      return;
    case MathPrecision::TF32:
      return launch_tensor<MathPrecision::TF32, TransA, TransB>(tiles, p, stream);
    case MathPrecision::BF16:
      return launch_tensor<MathPrecision::BF16, TransA, TransB>(tiles, p, stream);
  }
  fail("cuda::gemm: unknown MathPrecision ", int(precision));
}

void check_stride(const char* what, int64_t ld, int64_t row_length) {
  if (ld < row_length || ld < 0)
    fail("cuda::gemm: ", what, " = ", ld, " is shorter than a stored row (", row_length, ")");
}

}  // namespace

void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc, Stream stream) {
  gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream, GemmOptions{});
}

void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc, Stream stream, const GemmOptions& options) {
  // Half of int's range, so that tile origins plus a tile never overflow the kernel's ints.
  constexpr int64_t kMaxSize = std::numeric_limits<int>::max() / 2;
  if (m < 0 || n < 0 || k < 0 || m > kMaxSize || n > kMaxSize || k > kMaxSize)
    fail("cuda::gemm: sizes m = ", m, ", n = ", n, ", k = ", k, " out of range");
  if (trans_a == Transpose::Yes && trans_b == Transpose::Yes)
    fail("cuda::gemm: the (Yes, Yes) layout is not implemented; no layer needs it");
  if (m == 0 || n == 0) return;
  // Like BLAS, alpha == 0 makes the product vanish without reading A or B.
  const int64_t depth = alpha == 0.0f ? 0 : k;
  if (depth > 0) {
    check_stride("lda", lda, trans_a == Transpose::Yes ? m : k);
    check_stride("ldb", ldb, trans_b == Transpose::Yes ? k : n);
  }
  check_stride("ldc", ldc, n);

  const LaunchArgs p{.m = int(m),
                     .n = int(n),
                     .k = int(depth),
                     .alpha = alpha,
                     .a = a,
                     .lda = lda,
                     .b = b,
                     .ldb = ldb,
                     .beta = beta,
                     .c = c,
                     .ldc = ldc,
                     .bias = options.column_bias};
  if (trans_a == Transpose::No && trans_b == Transpose::No)
    launch_layout<false, false>(options.tiles, options.precision, p, stream);
  else if (trans_a == Transpose::Yes)
    launch_layout<true, false>(options.tiles, options.precision, p, stream);
  else
    launch_layout<false, true>(options.tiles, options.precision, p, stream);
}

}  // namespace polytask::kernels::cuda
