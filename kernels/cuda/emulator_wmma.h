// nvcuda::wmma, __nv_bfloat16 and __float_to_tf32 for the CPU emulator (kernels/cuda/emulator.h
// includes this inside its CUDA-language surface). Kernel sources include the real headers only
// outside POLYTASK_CUDA_EMULATION (kernels/cuda/tensor_core.h does the guarding), so the same
// code compiles against this.
//
// The model. A real fragment is spread over the 32 lanes of a warp in an unspecified layout; a
// kernel may only load it, store it, fill it, multiply it, and apply the same operation to every
// element x[i] (an element-wise op that does not care which element it is). So an emulated
// fragment may hold anything consistent with that — here each emulated thread holds the WHOLE
// tile, element (r, c) at x[r·cols + c] (num_elements = M·K, K·N or M·N), and:
//   - load_matrix_sync / store_matrix_sync check wmma's rules: every lane of the warp passes
//     the same pointer, stride and layout (checked against a per-warp log of calls, not at a
//     barrier — see check_collective for why), the pointer is 32-byte aligned and the stride
//     a multiple of 16 bytes;
//   - a load fills every lane's fragment with the whole tile;
//   - a store writes each element from ONE lane only (element e from lane e % 32), as the
//     hardware writes each element from the lane that holds it; and no lane waits for the
//     others: a kernel that reads what other lanes stored without a __syncwarp() (or
//     __syncthreads()) in between reads stale memory here, as it may on the GPU;
//   - none of them is a barrier, so the emulator's thread orders still expose a missing
//     __syncthreads between warps;
//   - mma_sync computes d = a·b + c in FP32, each output a chain c + a(i,0)·b(0,j) + a(i,1)·b(1,j)
//     + ... in increasing k, one rounding per addition. Every product of two TF32 or BF16
//     values is exact in FP32, so that chain is well defined. TF32 operands are truncated to
//     their TF32 bits first (the tensor cores read only those): a kernel that forgets
//     __float_to_tf32 gets truncated operands here, and a bias the tests detect.
//
// What differs from the hardware, by necessity: the order (and internal precision) in which a
// tensor-core mma adds its k products to the accumulator is not specified by NVIDIA and is not
// a sequential FP32 chain, so emulated and real TF32/BF16 results agree to within FP32
// accumulation error, not to the bit. Tests of these modes compare with tolerances derived from
// FP32 accumulation; bit-for-bit checks are kept to one implementation's determinism (run to
// run, tile to tile), on either.
//
// Cost: an emulated mma does M·N·K multiply-adds per lane (4096 for m16n16k16), 32 times per
// warp — keep emulated problem sizes modest.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cuda/emulator.h"
#include "kernels/error.h"

// ---- cuda_bf16.h ----------------------------------------------------------------------------

// The 16 high bits of an FP32 value. Only what the kernels use: conversions both ways.
struct __nv_bfloat16 {
  unsigned short bits;
};

// Round to nearest, ties to even (cvt.rn.bf16.f32); a NaN becomes the canonical 0x7fff.
inline __nv_bfloat16 __float2bfloat16(float x) {
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{0x7fffu};
  const uint32_t kept = u >> 16, dropped = u & 0xffffu;
  const bool up = dropped > 0x8000u || (dropped == 0x8000u && (kept & 1u) != 0u);
  return __nv_bfloat16{static_cast<unsigned short>(kept + (up ? 1u : 0u))};
}
inline __nv_bfloat16 __float2bfloat16_rn(float x) { return __float2bfloat16(x); }

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = uint32_t(h.bits) << 16;
  float x = 0.0f;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// ---- mma.h ------------------------------------------------------------------------------------

namespace nvcuda::wmma {

// Round to a 10-bit mantissa as cvt.rna.tf32.f32 does: to nearest, ties AWAY from zero (not
// to even); the low 13 bits of the result are 0. Infinities stay; a NaN stays a NaN.
inline float __float_to_tf32(float x) {
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7f800000u) != 0x7f800000u) {
    const uint32_t dropped = u & 0x1fffu;
    u &= ~0x1fffu;
    if (dropped >= 0x1000u) u += 0x2000u;  // magnitude up; a carry into the exponent is right
  } else if ((u & 0x7fffffu) != 0u) {
    u = 0x7fffffffu;
  }
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

namespace emulation {

// What a fragment's elements are stored as: TF32 in a float, the rest as themselves.
template <class T>
struct Storage {
  using type = T;
};
template <>
struct Storage<precision::tf32> {
  using type = float;
};

// The shapes CUDA offers for the types emulated here (FP32 accumulators only).
template <int M, int N, int K, class T>
constexpr bool supported_shape() {
  if constexpr (std::is_same_v<T, precision::tf32>) return M == 16 && N == 16 && K == 8;
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return K == 16 && ((M == 16 && N == 16) || (M == 32 && N == 8) || (M == 8 && N == 32));
  if constexpr (std::is_same_v<T, float>)  // accumulators of either
    return (M == 16 && N == 16 && (K == 8 || K == 16)) ||
           (K == 16 && ((M == 32 && N == 8) || (M == 8 && N == 32)));
  return false;
}

template <class Use, int M, int N, int K>
struct Extent {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
};

inline float widen(float x) { return x; }
inline float widen(__nv_bfloat16 x) { return __bfloat162float(x); }

// The TF32 bits of an operand: what a tensor core reads of a float in a TF32 fragment.
inline float tf32_bits(float x) {
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof(u));
  u &= 0xffffe000u;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// The argument checks of load/store: the same pointer, stride and layout from every lane of
// the warp, a 32-byte-aligned pointer, a stride that is a multiple of 16 bytes. Throws
// polytask::Error otherwise.
//
// They do not meet the warp at a barrier: the emulator releases a warp barrier only when every
// thread of the block waits somewhere, so a barrier in every fragment load would march all warps
// in step and hide a missing __syncthreads between them. Instead each warp keeps a log of its
// calls in this block: a lane's n-th call must match the warp's n-th entry, whichever lane wrote
// it first. (A call that only some lanes make is therefore not detected.)
struct CallLog {
  uint64_t block = ~uint64_t(0);
  std::vector<std::vector<uint64_t>> warp_calls;  // per warp: the key of each call, in order
  std::vector<uint32_t> thread_calls;             // per thread: how many calls it made
};

inline void check_collective(const char* what, const void* ptr, unsigned ldm, int layout,
                             unsigned element_bytes) {
  namespace emu = polytask::kernels::cuda::emulator;
  static CallLog log;
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  if (log.block != emu::blocks_started()) {
    log.block = emu::blocks_started();
    log.warp_calls.assign((threads + 31) / 32, {});
    log.thread_calls.assign(threads, 0);
  }
  const unsigned me = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const uint64_t address = uint64_t(reinterpret_cast<uintptr_t>(ptr));
  const uint64_t key = address ^ (uint64_t(ldm) * 0x9e3779b97f4a7c15ull) ^
                       (uint64_t(layout + 1) * 0xc2b2ae3d27d4eb4full);
  std::vector<uint64_t>& calls = log.warp_calls[me / 32];
  const uint32_t n = log.thread_calls[me]++;
  if (n < calls.size()) {
    if (calls[n] != key)
      polytask::fail("wmma::", what, ": lane ", me % 32, " of warp ", me / 32,
                     " passed a different pointer, stride or layout than the warp's other lanes");
  } else {
    calls.push_back(key);
  }
  if (address % 32 != 0)
    polytask::fail("wmma::", what, ": pointer ", ptr, " is not 32-byte aligned");
  if ((uint64_t(ldm) * element_bytes) % 16 != 0)
    polytask::fail("wmma::", what, ": ldm = ", ldm, " elements is not a multiple of 16 bytes");
}

}  // namespace emulation

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(emulation::supported_shape<M, N, K, T>(), "no wmma fragment of this shape/type");
  static_assert(std::is_same_v<Use, accumulator> == std::is_same_v<Layout, void>,
                "matrix_a/matrix_b fragments take row_major or col_major; accumulators none");

 public:
  using element_type = T;
  using storage_element_type = typename emulation::Storage<T>::type;
  static constexpr int rows = emulation::Extent<Use, M, N, K>::rows;
  static constexpr int cols = emulation::Extent<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  storage_element_type x[num_elements];  // element (r, c) at x[r·cols + c], whatever Layout
};

template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f,
                   const typename fragment<Use, M, N, K, T, Layout>::storage_element_type& v) {
  for (auto& e : f.x) e = v;
}

// matrix_a / matrix_b from memory laid out as Layout says, ldm elements between rows (row_major)
// or columns (col_major).
template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f,
                      const typename fragment<Use, M, N, K, T, Layout>::storage_element_type* p,
                      unsigned ldm) {
  using Frag = fragment<Use, M, N, K, T, Layout>;
  static_assert(!std::is_same_v<Use, accumulator>, "accumulators load with a layout_t");
  constexpr bool kRowMajor = std::is_same_v<Layout, row_major>;
  emulation::check_collective("load_matrix_sync", p, ldm, kRowMajor ? 0 : 1,
                              sizeof(typename Frag::storage_element_type));
  for (int r = 0; r < Frag::rows; ++r)
    for (int c = 0; c < Frag::cols; ++c)
      f.x[r * Frag::cols + c] =
          kRowMajor ? p[size_t(r) * ldm + size_t(c)] : p[size_t(c) * ldm + size_t(r)];
}

template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm,
                      layout_t layout) {
  emulation::check_collective("load_matrix_sync", p, ldm, int(layout), sizeof(float));
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c)
      f.x[r * N + c] =
          layout == mem_row_major ? p[size_t(r) * ldm + size_t(c)] : p[size_t(c) * ldm + size_t(r)];
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm,
                       layout_t layout) {
  emulation::check_collective("store_matrix_sync", p, ldm, int(layout), sizeof(float));
  // Element e is written by lane e % 32 only (see the top of the file).
  const unsigned lane = polytask::kernels::cuda::emulator::lane_id();
  for (int e = int(lane); e < M * N; e += 32) {
    const int r = e / N, c = e % N;
    (layout == mem_row_major ? p[size_t(r) * ldm + size_t(c)] : p[size_t(c) * ldm + size_t(r)]) =
        f.x[e];
  }
}

// d = a·b + c; d may be c.
template <int M, int N, int K, class T, class LayoutA, class LayoutB>
void mma_sync(fragment<accumulator, M, N, K, float>& d,
              const fragment<matrix_a, M, N, K, T, LayoutA>& a,
              const fragment<matrix_b, M, N, K, T, LayoutB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  float av[M * K], bv[K * N];
  for (int i = 0; i < M * K; ++i) {
    av[i] = emulation::widen(a.x[i]);
    if constexpr (std::is_same_v<T, precision::tf32>) av[i] = emulation::tf32_bits(av[i]);
  }
  for (int i = 0; i < K * N; ++i) {
    bv[i] = emulation::widen(b.x[i]);
    if constexpr (std::is_same_v<T, precision::tf32>) bv[i] = emulation::tf32_bits(bv[i]);
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float sum = c.x[i * N + j];
      // The product is exact in FP32 (<= 22 significant bits), so only the addition rounds.
      for (int p = 0; p < K; ++p) sum = sum + av[i * K + p] * bv[p * N + j];
      d.x[i * N + j] = sum;
    }
}

}  // namespace nvcuda::wmma
