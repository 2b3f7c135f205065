// The float GEMM micro-kernels, one source for every instruction set. Each
// kernels/cpu/microkernels_<isa>.cpp defines POLYTASK_MICROKERNEL_LANES (floats per vector) and
// POLYTASK_MICROKERNEL_NAMESPACE, is compiled with that ISA's flags (-mavx512f, -mavx2 -mfma,
// or none) and -ffp-contract=fast, and includes this file once; GCC's vector extension then
// becomes zmm, ymm or xmm code with fused multiply-adds where the ISA has them. Nothing here may
// be used outside those files: it is compiled for instructions the CPU may lack, and the
// dispatcher (micro_kernels()) only hands out the variant the CPU supports.
//
// Two shapes of kernel (the tile sizes are per ISA: enough accumulators to hide the FMA
// latency on two FMA pipes, few enough to stay in registers):
//   nn — C tile (MR x NR) from a packed A panel, a[k*MR + i], and B read in place, b[k*ldb + j].
//        The vectors run along C's rows (NR = NV vectors); A is broadcast one element at a time.
//        The GEMM for convolution forward / backward-data and every layout but A·Bᵀ.
//   nt — C tile (DMR x DNR) of dot products of rows: c[i][j] = Σ_k a_i[k] · b_j[k]. The vectors
//        run along k, so both operands are read where they are (no packing) and the sums are
//        reduced across lanes once per tile. The GEMM for A·Bᵀ: the dense forward and the
//        convolution's filter gradient, where k (the batch's pixels) is the contiguous axis.
#pragma once

#if !defined(POLYTASK_MICROKERNEL_LANES) || !defined(POLYTASK_MICROKERNEL_NAMESPACE)
#error "include microkernels.h only from a kernels/cpu/microkernels_<isa>.cpp file"
#endif

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "kernels/cpu/sgemm.h"

namespace polytask::kernels::cpu::POLYTASK_MICROKERNEL_NAMESPACE {

constexpr int kLanes = POLYTASK_MICROKERNEL_LANES;
typedef float vfloat __attribute__((vector_size(kLanes * sizeof(float))));

inline vfloat load(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vfloat v) { std::memcpy(p, &v, sizeof v); }
// A broadcast. The intrinsics give one vbroadcastss; GCC makes a lane loop into a 256-bit
// broadcast plus an insert, and vfloat{} + x into an addition.
#if defined(__AVX512F__) && POLYTASK_MICROKERNEL_LANES == 16
inline vfloat splat(float x) { return _mm512_set1_ps(x); }
#elif defined(__AVX2__) && POLYTASK_MICROKERNEL_LANES == 8
inline vfloat splat(float x) { return _mm256_set1_ps(x); }
#elif defined(__SSE2__) && POLYTASK_MICROKERNEL_LANES == 4
inline vfloat splat(float x) { return _mm_set1_ps(x); }
#else
inline vfloat splat(float x) {
  vfloat v;
  for (int l = 0; l < kLanes; ++l) v[l] = x;
  return v;
}
#endif
inline float lane_sum(vfloat v) {
  float s = 0;
#pragma GCC unroll 16
  for (int l = 0; l < kLanes; ++l) s += v[l];
  return s;
}

// c = alpha * acc + beta * c, where beta == 0 never reads c (it may hold NaN).
inline float combine(float acc, float alpha, float beta, const float* c) {
  return beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

// The broadcast-FMA core of the nn and gather kernels: acc[i][j] += A(i, k)·B[k][j] with
// A(i, k) = a_of(i, k) broadcast, B's row k at b + k*ldb; then C = alpha·acc + beta·C (beta 0
// never reads C).
template <int MR, int NV, class AValue>
inline void broadcast_tile(int64_t kc, AValue a_of, const float* __restrict b, int64_t ldb,
                           float* c, int64_t ldc, float alpha, float beta) {
  vfloat acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = vfloat{};
  for (int64_t k = 0; k < kc; ++k) {
    vfloat bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = load(b + j * kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const vfloat ai = splat(a_of(i, k));
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] += ai * bv[j];
    }
    b += ldb;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* out = c + i * ldc + j * kLanes;
      vfloat v = acc[i][j] * alpha;
      if (beta != 0.0f) v += load(out) * beta;
      store(out, v);
    }
  }
}

template <int MR, int NV>
void nn_tile(int64_t kc, const float* __restrict a, const float* __restrict b, int64_t ldb,
             float* c, int64_t ldc, float alpha, float beta) {
  broadcast_tile<MR, NV>(
      kc, [a](int i, int64_t k) { return a[k * MR + i]; }, b, ldb, c, ldc, alpha, beta);
}

template <int MR, int NR>
void nt_tile(int64_t kc, const float* const* a_rows, const float* const* b_rows, float* c,
             int64_t ldc, int m_valid, int n_valid, float alpha, float beta) {
  const float* a[MR];
  const float* b[NR];
  for (int i = 0; i < MR; ++i) a[i] = a_rows[i];
  for (int j = 0; j < NR; ++j) b[j] = b_rows[j];
  vfloat acc[MR][NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) acc[i][j] = vfloat{};
  int64_t k = 0;
  for (; k + kLanes <= kc; k += kLanes) {
    vfloat av[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) av[i] = load(a[i] + k);
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      const vfloat bv = load(b[j] + k);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) acc[i][j] += av[i] * bv;
    }
  }
  float sum[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) sum[i][j] = lane_sum(acc[i][j]);
  for (; k < kc; ++k)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) sum[i][j] += a[i][k] * b[j][k];
  for (int i = 0; i < m_valid; ++i)
    for (int j = 0; j < n_valid; ++j)
      c[i * ldc + j] = combine(sum[i][j], alpha, beta, c + i * ldc + j);
}

// C tile (MR x NV vectors) = / += Σ_k a_rows[i][k_off[k]] · b[k*ldb + j]: A gathered from an
// activation where it lies (row i's element k at a_rows[i] + k_off[k]), B a packed row of NV
// vectors per k. The direct convolution (conv2d_fast.cpp): output pixels x channels without an
// im2col buffer.
template <int MR, int NV>
void gather_tile(int64_t kc, const float* const* a_rows, const int64_t* __restrict k_off,
                 const float* __restrict b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  const float* a[MR];
  for (int i = 0; i < MR; ++i) a[i] = a_rows[i];
  broadcast_tile<MR, NV>(
      kc, [&a, k_off](int i, int64_t k) { return a[i][k_off[k]]; }, b, ldb, c, ldc, 1.0f,
      accumulate ? 1.0f : 0.0f);
}

// dst[i] = src[i] and dst[i] += src[i] for i < n: the short rows (a convolution's output width)
// that im2col copies and col2im adds back, a whole vector at a time. AVX-512 masks the last
// partial vector; the others finish it element by element.
inline void copy_row(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(dst + i, load(src + i));
#if defined(__AVX512F__) && POLYTASK_MICROKERNEL_LANES == 16
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, mask, _mm512_maskz_loadu_ps(mask, src + i));
  }
#else
  for (; i < n; ++i) dst[i] = src[i];
#endif
}

inline void add_row(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(dst + i, load(dst + i) + load(src + i));
#if defined(__AVX512F__) && POLYTASK_MICROKERNEL_LANES == 16
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 sum = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst + i),
                                     _mm512_maskz_loadu_ps(mask, src + i));
    _mm512_mask_storeu_ps(dst + i, mask, sum);
  }
#else
  for (; i < n; ++i) dst[i] += src[i];
#endif
}

// The machine's FMA peak, probed: 24 independent multiply-add chains (enough to cover the
// latency of two FMA pipes), `iterations` rounds, 2 * kLanes * 24 FLOP per round. Returns a
// sum of the chains so that nothing is optimised away.
inline float fma_probe(int64_t iterations) {
  vfloat acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = splat(float(i) * 1e-3f);
  const vfloat a = splat(0.999999f), b = splat(1e-7f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = acc[i] * a + b;
  }
  float sum = 0;
  for (int i = 0; i < 24; ++i) sum += lane_sum(acc[i]);
  return sum;
}

}  // namespace polytask::kernels::cpu::POLYTASK_MICROKERNEL_NAMESPACE
