// What the tensor-core (TF32 / BF16) kernels of gemm.cu and conv2d.cu share: the wmma headers
// (the real ones under nvcc, the emulation in kernels/cuda/emulator_wmma.h otherwise), and per
// precision the operand type kept in shared memory, the wmma shape, and the rounding applied as
// an FP32 value is staged for the tensor cores.
//
// Both precisions stage operands in shared memory already rounded: TF32 as floats whose low 13
// bits are 0 (__float_to_tf32, round to nearest with ties away from zero — PTX cvt.rna; the
// tensor cores read only the TF32 bits, so unrounded floats would be truncated instead), BF16
// as __nv_bfloat16 (__float2bfloat16, round to nearest even). Rounding once per staged element
// costs less than rounding every fragment each warp loads. Accumulators are FP32 fragments.
//
// wmma's rules, which the tiles in both files keep: every fragment pointer 32-byte aligned,
// every ldm a multiple of 16 bytes; fragments are loaded, stored and multiplied by whole
// converged warps.
#pragma once

#include <cstdint>

#include "kernels/cuda/runtime.h"
#include "kernels/precision.h"

#if !defined(POLYTASK_CUDA_EMULATION)
#include <cuda_bf16.h>
#include <mma.h>
#endif

// TF32/BF16 wmma exists from sm_80 on. The FP32 kernels also run on sm_75 (Turing), so the
// device pass for an older architecture still compiles these files: there the tensor-core
// kernels' bodies become a trap (see kCompiled), never reached because the host refuses
// --precision tf32|bf16 on such a GPU first (engine/device.h, tensor_core_problem). The host
// pass and the emulator see everything.
#if defined(POLYTASK_CUDA_EMULATION) || !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define POLYTASK_TENSOR_CORES 1
#else
#define POLYTASK_TENSOR_CORES 0
// Tile shapes only the skipped tensor-core bodies read are then "declared but never
// referenced" (#177). The same code is checked in full by the host pass and the sm_80+ passes.
#pragma nv_diag_suppress 177
#endif

namespace polytask::kernels::cuda::tensor_core {

// Whether precision P's kernel code compiles in this pass: a kernel templated on P calls its
// body only `if constexpr (kCompiled<P>)`, else unreachable(), so that no wmma code is
// instantiated for an architecture without it.
template <MathPrecision P>
inline constexpr bool kCompiled = P == MathPrecision::FP32 || POLYTASK_TENSOR_CORES;

// What a tensor-core kernel does on a GPU without tensor cores for its precision: stop with an
// error (cudaErrorLaunchFailure) instead of computing garbage. The host never launches one there.
__device__ __forceinline__ void unreachable() {
#if !POLYTASK_TENSOR_CORES
  __trap();
#endif
}

template <MathPrecision P>
struct Operand;

// TF32: m16n16k8, the operand a float holding a TF32 value.
template <>
struct Operand<MathPrecision::TF32> {
  using Shared = float;
#if POLYTASK_TENSOR_CORES
  using Fragment = nvcuda::wmma::precision::tf32;
#endif
  static constexpr int kM = 16, kN = 16, kK = 8;
  static constexpr int kPad = 4;  // elements: 16 bytes, keeps ldm a multiple of 16 bytes
  static __device__ __forceinline__ Shared convert(float x) {
#if POLYTASK_TENSOR_CORES
    return nvcuda::wmma::__float_to_tf32(x);
#else
    return x;  // never called: see unreachable()
#endif
  }
};

// BF16: m16n16k16.
template <>
struct Operand<MathPrecision::BF16> {
  using Shared = __nv_bfloat16;
  using Fragment = __nv_bfloat16;
  static constexpr int kM = 16, kN = 16, kK = 16;
  static constexpr int kPad = 8;
  static __device__ __forceinline__ Shared convert(float x) { return __float2bfloat16(x); }
};

template <MathPrecision P, class Layout>
using FragmentA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, Operand<P>::kM, Operand<P>::kN,
                                         Operand<P>::kK, typename Operand<P>::Fragment, Layout>;
template <MathPrecision P, class Layout>
using FragmentB = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, Operand<P>::kM, Operand<P>::kN,
                                         Operand<P>::kK, typename Operand<P>::Fragment, Layout>;
template <MathPrecision P>
using Accumulator = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, Operand<P>::kM,
                                           Operand<P>::kN, Operand<P>::kK, float>;

// Four converted values to four consecutive shared elements (dst 4-element aligned), as one
// 16-byte (TF32) or 8-byte (BF16) store.
template <MathPrecision P>
__device__ __forceinline__ void store4(typename Operand<P>::Shared* dst, float v0, float v1,
                                       float v2, float v3) {
  using Op = Operand<P>;
  if constexpr (P == MathPrecision::TF32) {
    *reinterpret_cast<float4*>(dst) =
        make_float4(Op::convert(v0), Op::convert(v1), Op::convert(v2), Op::convert(v3));
  } else {
    struct alignas(8) Four {
      __nv_bfloat16 v[4];
    };
    Four four;
    four.v[0] = Op::convert(v0);
    four.v[1] = Op::convert(v1);
    four.v[2] = Op::convert(v2);
    four.v[3] = Op::convert(v3);
    *reinterpret_cast<Four*>(dst) = four;
  }
}

}  // namespace polytask::kernels::cuda::tensor_core
