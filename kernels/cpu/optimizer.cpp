#include "kernels/optimizer.h"
#include "kernels/cpu/parallel.h"

#include <cmath>

#include "kernels/error.h"

namespace polytask::kernels::cpu {

template <class T>
void adam_update(int64_t count, const AdamParams& p, T* param, const T* grad, T* m, T* v) {
  if (p.step < 1) fail("adam_update: step ", p.step, " must be >= 1 (bias correction is 1-based)");
  // In double: 1 - β2^t is ~1e-3 at t = 1 and float's pow would cost digits exactly where the
  // correction matters most.
  const double t = static_cast<double>(p.step);
  const double correction1 = 1.0 - std::pow(static_cast<double>(p.beta1), t);
  const double correction2 = 1.0 - std::pow(static_cast<double>(p.beta2), t);
  const T step_size = static_cast<T>(static_cast<double>(p.lr) / correction1);
  const T inv_sqrt_correction2 = static_cast<T>(1.0 / std::sqrt(correction2));
  const T beta1 = static_cast<T>(p.beta1), beta2 = static_cast<T>(p.beta2);
  const T one_minus_beta1 = T(1) - beta1, one_minus_beta2 = T(1) - beta2;
  const T eps = static_cast<T>(p.eps);
  // Decoupled decay shrinks the old parameter before the Adam step, as torch.optim.AdamW.
  const T decay =
      static_cast<T>(1.0 - static_cast<double>(p.lr) * static_cast<double>(p.weight_decay));

  // Four arrays in, three out, a sqrt and a division per parameter: ~4 units of parallel work.
  const int threads = parallel_threads(4 * count);
#pragma omp parallel for simd schedule(static) num_threads(threads) if (parallel : threads > 1)
  for (int64_t i = 0; i < count; ++i) {
    const T g = grad[i];
    const T mi = beta1 * m[i] + one_minus_beta1 * g;
    const T vi = beta2 * v[i] + one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const T denom = std::sqrt(vi) * inv_sqrt_correction2 + eps;
    param[i] = param[i] * decay - step_size * mi / denom;
  }
}

template <class T>
void sgd_update(int64_t count, const SgdParams& p, T* param, const T* grad, T* velocity) {
  const T lr = static_cast<T>(p.lr), momentum = static_cast<T>(p.momentum);
  const T weight_decay = static_cast<T>(p.weight_decay);
  const bool nesterov = p.nesterov;
  // A zero-initialised velocity makes the first step buf = g, torch.optim.SGD's special case.
  const int threads = parallel_threads(3 * count);
#pragma omp parallel for simd schedule(static) num_threads(threads) if (parallel : threads > 1)
  for (int64_t i = 0; i < count; ++i) {
    const T g = grad[i] + weight_decay * param[i];
    const T buf = momentum * velocity[i] + g;
    velocity[i] = buf;
    param[i] -= lr * (nesterov ? g + momentum * buf : buf);
  }
}

template void adam_update<float>(int64_t, const AdamParams&, float*, const float*, float*, float*);
template void adam_update<double>(int64_t, const AdamParams&, double*, const double*, double*,
                                  double*);
template void sgd_update<float>(int64_t, const SgdParams&, float*, const float*, float*);
template void sgd_update<double>(int64_t, const SgdParams&, double*, const double*, double*);

}  // namespace polytask::kernels::cpu
