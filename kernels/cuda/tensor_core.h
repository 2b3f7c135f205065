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
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "the TF32/BF16 tensor-core kernels need compute capability 8.0 or later (sm_80+)"
#endif
#endif

namespace polytask::kernels::cuda::tensor_core {

template <MathPrecision P>
struct Operand;

// TF32: m16n16k8, the operand a float holding a TF32 value.
template <>
struct Operand<MathPrecision::TF32> {
  using Shared = float;
  using Fragment = nvcuda::wmma::precision::tf32;
  static constexpr int kM = 16, kN = 16, kK = 8;
  static constexpr int kPad = 4;  // elements: 16 bytes, keeps ldm a multiple of 16 bytes
  static __device__ __forceinline__ Shared convert(float x) {
    return nvcuda::wmma::__float_to_tf32(x);
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
