// CUDA inverted dropout (kernels/dropout.h). The mask is recomputed, never stored: element i is
// kept when dropout_keeps(seed, stream, g, rate) for its global index g = first_index + i, i.e.
// when word g mod 4 of the Philox block g / 4 (kernels/philox.h), as a 24-bit uniform, is
// >= rate. One thread takes one quad of elements aligned on the global index — exactly one
// Philox block, so each block is computed once rather than four times (Philox4x32-10 is ~100
// integer instructions; per element it would make the kernel compute-bound) — and moves the
// quad with one float4 load and store when the quads sit on 16-byte boundaries of both arrays,
// else with scalar accesses; a partial quad (the first, when first_index is not a multiple of
// 4, and the last) is always scalar.
//
// Values equal the CPU's bit for bit: the same 1/(1 - rate) rounded once to float, x·scale
// (one rounding), and in Accumulate dx + (keep ? dy·scale : 0) with the product rounded before
// the add (__fmul_rn: nvcc would otherwise fuse the two into an fma, one rounding fewer).
#include "kernels/dropout.h"

#include <cstdint>

#include "kernels/cuda/grid_stride.h"
#include "kernels/cuda/launch.h"
#include "kernels/error.h"

namespace polytask::kernels::cuda {

namespace {

using detail::global_thread;
using detail::grid_threads;

constexpr unsigned kThreads = 256;

// A product that the compiler may not fuse with a following add.
#if defined(POLYTASK_CUDA_EMULATION)
inline float mul_rounded(float a, float b) { return a * b; }
#else
__device__ __forceinline__ float mul_rounded(float a, float b) { return __fmul_rn(a, b); }
#endif

// Bit k set: global element 4·block + k is kept. The uniform is philox_uniform's conversion of
// the same word (24 high bits, times 2^-24: exact), so the decision is dropout_keeps' bit for bit.
__device__ __forceinline__ unsigned keep_bits(uint64_t seed, uint64_t stream, uint64_t block,
                                              float rate) {
  const Philox4x32 r = philox4x32_10(uint32_t(block), uint32_t(block >> 32), uint32_t(stream),
                                     uint32_t(stream >> 32), uint32_t(seed), uint32_t(seed >> 32));
  unsigned bits = 0;
#pragma unroll
  for (int k = 0; k < 4; ++k)
    bits |= (float(r.v[k] >> 8) * (1.0f / 16777216.0f) >= rate ? 1u : 0u) << k;
  return bits;
}

struct DropoutArgs {
  int64_t count;
  float rate;  // 0 keeps everything without drawing
  float scale;
  uint64_t seed, stream;
  PhiloxStream::FromStep from_step;  // stream = (*step << shift) + call when step is set
  // Quad q holds global elements 4·(first_block + q) + k, k < 4, which are local elements
  // 4·q + k - lead (those in [0, count)): first_index = 4·first_block + lead.
  uint64_t first_block;
  int64_t lead;  // first_index mod 4

  __device__ __forceinline__ uint64_t draw_stream() const {
    return from_step.step ? (*from_step.step << from_step.shift) + from_step.call : stream;
  }
};

// out = keep ? in·scale : 0, or out += that (kAccumulate).
template <bool kAccumulate>
__device__ __forceinline__ float dropped(bool keep, float in, float scale, float old) {
  const float value = keep ? mul_rounded(in, scale) : 0.0f;
  if constexpr (kAccumulate) return old + value;
  return value;
}

// in and out may alias (no __restrict__): each element is read, then written, by one thread.
template <bool kAccumulate, bool kVector>
__global__ void __launch_bounds__(kThreads)
    dropout_kernel(DropoutArgs a, const float* in, float* out) {
  const int64_t quads = (a.lead + a.count + 3) / 4;
  const uint64_t stream = a.draw_stream();
  constexpr uint64_t kBlockMask = ~uint64_t(0) >> 2;  // the global index wraps modulo 2^64
  for (int64_t q = global_thread(); q < quads; q += grid_threads()) {
    const uint64_t block = (a.first_block + uint64_t(q)) & kBlockMask;
    const unsigned keep = a.rate > 0.0f ? keep_bits(a.seed, stream, block, a.rate) : 15u;
    const int64_t i = 4 * q - a.lead;
    if (kVector && i >= 0 && i + 4 <= a.count) {
      const float4 v = *reinterpret_cast<const float4*>(in + i);
      float4 old = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if constexpr (kAccumulate) old = *reinterpret_cast<const float4*>(out + i);
      *reinterpret_cast<float4*>(out + i) =
          make_float4(dropped<kAccumulate>(keep & 1u, v.x, a.scale, old.x),
                      dropped<kAccumulate>(keep & 2u, v.y, a.scale, old.y),
                      dropped<kAccumulate>(keep & 4u, v.z, a.scale, old.z),
                      dropped<kAccumulate>(keep & 8u, v.w, a.scale, old.w));
    } else {
      for (int k = i < 0 ? int(-i) : 0; k < 4 && i + k < a.count; ++k)
        out[i + k] = dropped<kAccumulate>((keep >> k) & 1u, in[i + k], a.scale,
                                          kAccumulate ? out[i + k] : 0.0f);
    }
  }
}

void check_args(const char* op, int64_t count, float rate) {
  // Written so that NaN fails too; rate 1 would scale the (absent) survivors by 1/0.
  if (!(rate >= 0.0f && rate < 1.0f)) fail(op, ": rate ", rate, " is outside [0, 1)");
  if (count < 0) fail(op, ": negative element count ", count);
}

// One rounding of 1/(1 - rate), as the CPU reference's keep_scale<float>.
float keep_scale(float rate) { return float(1.0 / (1.0 - double(rate))); }

// Whether element -lead of p (where the quads start) sits on a 16-byte boundary.
bool quads_aligned16(const float* p, int64_t lead) {
  return (reinterpret_cast<uintptr_t>(p) - uintptr_t(lead) * sizeof(float)) % 16u == 0;
}

void launch_dropout(const char* op, const DropoutArgs& args, const float* in, float* out, bool accumulate,
         Stream stream) {
  const unsigned blocks = blocks_for((args.lead + args.count + 3) / 4, kThreads);
  const bool vector = quads_aligned16(in, args.lead) && quads_aligned16(out, args.lead);
  if (accumulate) {
    if (vector)
      launch(op, dropout_kernel<true, true>, blocks, kThreads, 0, stream, args, in, out);
    else
      launch(op, dropout_kernel<true, false>, blocks, kThreads, 0, stream, args, in, out);
  } else {
    if (vector)
      launch(op, dropout_kernel<false, true>, blocks, kThreads, 0, stream, args, in, out);
    else
      launch(op, dropout_kernel<false, false>, blocks, kThreads, 0, stream, args, in, out);
  }
}

void copy_async(int64_t count, const float* from, float* to, Stream stream) {
  if (from == to) return;
  POLYTASK_CUDA_CHECK(cudaMemcpyAsync(to, from, size_t(count) * sizeof(float),
                                      cudaMemcpyDeviceToDevice, stream));
}

// The kernel's arguments for a draw whose element 0 has Philox index first_index.
DropoutArgs dropout_args(int64_t count, float rate, uint64_t seed, const PhiloxStream& draw,
                         uint64_t first_index) {
  return {
      .count = count,
      .rate = rate,
      .scale = keep_scale(rate),
      .seed = seed,
      .stream = draw.value,
      .from_step = draw.from_step,
      .first_block = first_index >> 2,
      .lead = int64_t(first_index & 3u),
  };
}

}  // namespace

void dropout_forward(int64_t count, float rate, uint64_t seed, PhiloxStream philox_stream,
                     uint64_t first_index, const float* x, float* y, Stream stream) {
  check_args("dropout_forward", count, rate);
  if (count == 0) return;
  // Every uniform draw is >= 0, so rate 0 keeps all and scales by 1: a copy, as on the CPU.
  if (rate == 0.0f) return copy_async(count, x, y, stream);
  launch_dropout("dropout_forward", dropout_args(count, rate, seed, philox_stream, first_index), x,
                 y, false, stream);
}

void dropout_backward(int64_t count, float rate, uint64_t seed, PhiloxStream philox_stream,
                      uint64_t first_index, const float* dy, float* dx, GradMode mode,
                      Stream stream) {
  check_args("dropout_backward", count, rate);
  if (count == 0) return;
  const bool accumulate = mode == GradMode::Accumulate;
  if (rate == 0.0f && !accumulate) return copy_async(count, dy, dx, stream);
  // With rate 0 the kernel draws nothing and adds dy·1 = dy, the CPU's dx + dy.
  launch_dropout("dropout_backward", dropout_args(count, rate, seed, philox_stream, first_index),
                 dy, dx, accumulate, stream);
}

}  // namespace polytask::kernels::cuda
