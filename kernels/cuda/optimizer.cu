// CUDA versions of the parameter updates (kernels/optimizer.h): one grid-stride launch over the
// flat arrays, float4 accesses where they share an alignment. Adam moves 28 bytes a parameter
// (reads param, grad, m, v; writes param, m, v), SGD 20, so both are bound by memory; the
// per-element arithmetic is the CPU reference's, in the same order.
#include <cmath>

#include "kernels/cuda/grid_stride.h"
#include "kernels/cuda/launch.h"
#include "kernels/optimizer.h"

namespace polytask::kernels::cuda {

namespace {

using detail::global_thread;
using detail::grid_threads;
using detail::kFlatThreads;
using detail::VectorSplit;

using AdamConstants = AdamStepConstants;
using SgdConstants = SgdStepConstants;

// The step's constants as the kernel receives them: by value, or staged in device memory
// (CUDA graphs) and read when the kernel runs.
template <class C>
struct Constants {
  C value;
  const C* staged;
  __device__ __forceinline__ C get() const { return staged ? *staged : value; }
};

__device__ __forceinline__ void adam_element(const AdamConstants& c, float& param, float grad,
                                             float& m, float& v) {
  const float mi = c.beta1 * m + c.one_minus_beta1 * grad;
  const float vi = c.beta2 * v + c.one_minus_beta2 * grad * grad;
  m = mi;
  v = vi;
  const float denom = sqrtf(vi) * c.inv_sqrt_correction2 + c.eps;
  param = param * c.decay - c.step_size * mi / denom;
}

template <bool kNesterov>
__device__ __forceinline__ void sgd_element(const SgdConstants& c, float& param, float grad,
                                            float& velocity) {
  const float g = grad + c.weight_decay * param;
  const float buf = c.momentum * velocity + g;
  velocity = buf;
  param -= c.lr * (kNesterov ? g + c.momentum * buf : buf);
}

__device__ __forceinline__ float4 load4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

__global__ void __launch_bounds__(kFlatThreads)
    adam_kernel(VectorSplit split, Constants<AdamConstants> constants, float* __restrict__ param,
                const float* __restrict__ grad, float* __restrict__ m, float* __restrict__ v) {
  const AdamConstants c = constants.get();
  for (int64_t q = global_thread(); q < split.quads; q += grid_threads()) {
    const int64_t i = split.head + 4 * q;
    float4 p4 = load4(param + i), m4 = load4(m + i), v4 = load4(v + i);
    const float4 g4 = load4(grad + i);
    adam_element(c, p4.x, g4.x, m4.x, v4.x);
    adam_element(c, p4.y, g4.y, m4.y, v4.y);
    adam_element(c, p4.z, g4.z, m4.z, v4.z);
    adam_element(c, p4.w, g4.w, m4.w, v4.w);
    store4(param + i, p4);
    store4(m + i, m4);
    store4(v + i, v4);
  }
  for (int64_t k = global_thread(); k < split.scalars; k += grid_threads()) {
    const int64_t i = split.scalar_index(k);
    adam_element(c, param[i], grad[i], m[i], v[i]);
  }
}

template <bool kNesterov>
__global__ void __launch_bounds__(kFlatThreads)
    sgd_kernel(VectorSplit split, Constants<SgdConstants> constants, float* __restrict__ param,
               const float* __restrict__ grad, float* __restrict__ velocity) {
  const SgdConstants c = constants.get();
  for (int64_t q = global_thread(); q < split.quads; q += grid_threads()) {
    const int64_t i = split.head + 4 * q;
    float4 p4 = load4(param + i), b4 = load4(velocity + i);
    const float4 g4 = load4(grad + i);
    sgd_element<kNesterov>(c, p4.x, g4.x, b4.x);
    sgd_element<kNesterov>(c, p4.y, g4.y, b4.y);
    sgd_element<kNesterov>(c, p4.z, g4.z, b4.z);
    sgd_element<kNesterov>(c, p4.w, g4.w, b4.w);
    store4(param + i, p4);
    store4(velocity + i, b4);
  }
  for (int64_t k = global_thread(); k < split.scalars; k += grid_threads()) {
    const int64_t i = split.scalar_index(k);
    sgd_element<kNesterov>(c, param[i], grad[i], velocity[i]);
  }
}

}  // namespace

AdamStepConstants adam_step_constants(const AdamParams& p) {
  if (p.step < 1) fail("adam_update: step ", p.step, " must be >= 1 (bias correction is 1-based)");
  // The CPU reference's constants, computed the same way: in double, then rounded to float.
  const double t = double(p.step);
  const double correction1 = 1.0 - std::pow(double(p.beta1), t);
  const double correction2 = 1.0 - std::pow(double(p.beta2), t);
  AdamStepConstants c{};
  c.step_size = float(double(p.lr) / correction1);
  c.inv_sqrt_correction2 = float(1.0 / std::sqrt(correction2));
  c.beta1 = p.beta1;
  c.beta2 = p.beta2;
  c.one_minus_beta1 = 1.0f - p.beta1;
  c.one_minus_beta2 = 1.0f - p.beta2;
  c.eps = p.eps;
  c.decay = float(1.0 - double(p.lr) * double(p.weight_decay));
  return c;
}

SgdStepConstants sgd_step_constants(const SgdParams& p) {
  return {p.lr, p.momentum, p.weight_decay};
}

void adam_update(int64_t count, const AdamParams& p, float* param, const float* grad, float* m,
                 float* v, Stream stream, const AdamStepConstants* staged) {
  const Constants<AdamConstants> c{staged ? AdamConstants{} : adam_step_constants(p), staged};
  if (count <= 0) return;
  const VectorSplit split = detail::split_for_float4(count, {param, grad, m, v});
  launch("adam_update", adam_kernel, detail::flat_blocks(split), kFlatThreads, 0, stream, split, c,
         param, grad, m, v);
}

void sgd_update(int64_t count, const SgdParams& p, float* param, const float* grad, float* velocity,
                Stream stream, const SgdStepConstants* staged) {
  if (count <= 0) return;
  const Constants<SgdConstants> c{staged ? SgdConstants{} : sgd_step_constants(p), staged};
  const VectorSplit split = detail::split_for_float4(count, {param, grad, velocity});
  const unsigned blocks = detail::flat_blocks(split);
  if (p.nesterov)
    launch("sgd_update", sgd_kernel<true>, blocks, kFlatThreads, 0, stream, split, c, param, grad,
           velocity);
  else
    launch("sgd_update", sgd_kernel<false>, blocks, kFlatThreads, 0, stream, split, c, param, grad,
           velocity);
}

}  // namespace polytask::kernels::cuda
