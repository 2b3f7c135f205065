// The per-step arithmetic of every gradient-balancing strategy (engine/balancer.h), on T
// numbers and the T×T Gram matrix of the task gradients at the fan-out: one definition for the
// host (engine/balancers/) and the device (kernels/cuda/balance.cu, one-thread kernels that a
// step's CUDA graph replays, so no strategy reads anything back per step).
//
// A step, for either device:
//   seeds(settings, state, losses, step, seeds)       before the heads' backward: task t's loss
//                                                      backward is seeded with seeds[t];
//   combine(settings, state, gram, losses, seeds, step, coefficients)
//                                                      after it, from the Gram matrix of
//                                                      g_t = seeds[t]·∂L_t/∂z: dz = Σ_t c_t·g_t.
// Each strategy's formulas are in its own header, kernels/balance/<name>.h, with the paper they
// come from. Everything is double, deterministic, allocation-free and bounded in time (fixed
// iteration caps), so the same code runs in a one-thread kernel.
#pragma once

#include <math.h>  // sqrt, exp, log, pow, fabs, INFINITY: global, as device code calls them

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/philox.h"  // POLYTASK_HOST_DEVICE

namespace polytask::kernels::balance {

// The most tasks a balanced fan-out takes (T×T solves in a one-thread kernel's registers and
// local memory). Local arrays are sized for it and zero-initialised: only their first T (T×T)
// entries are used, which GCC's -Wmaybe-uninitialized cannot see once the calls are inlined.
inline constexpr int kMaxTasks = 8;

// The strategies, in the order engine/balancers/factory.cpp lists them.
enum class Strategy : int32_t {
  Static,
  Dynamic,
  Uncertainty,
  GradNorm,
  Dwa,
  PcGrad,
  Mgda,
  UpGrad,
  Famo,
  CaGrad,
  NashMtl,
  Imtl,
  AlignedMtl,
  Rlw,
  StaticFromNorms,
};

// What a run fixes: the strategy, its options and the tasks' configured loss weights.
struct Settings {
  Strategy strategy = Strategy::Static;
  int32_t tasks = 0;
  double configured[kMaxTasks] = {};  // the tasks' configured loss weights
  double lr = 1e-3;                   // uncertainty, gradnorm, imtl, famo: their Adam's rate
  double alpha = 1.5;                 // gradnorm: the restoring-force exponent α
  double c = 0.4;                     // cagrad: the radius c of the ball around the mean gradient
  double decay = 1e-3;                // famo: the weight decay γ of its logits
  int32_t normalization = 0;          // mgda: 0 none, 1 l2, 2 loss, 3 loss+
  int32_t mode = 0;  // imtl: 0 hybrid, 1 gradient, 2 loss; aligned-mtl: 0 min, 1 median, 2 rmse
  uint64_t seed = 0;  // pcgrad (task order), rlw (the random weights)
};

// What a strategy carries from step to step (on the device for a GPU run; read back once per
// epoch and for checkpoints). Each strategy uses the fields its header names.
struct State {
  double weights[kMaxTasks] = {};  // what each task counted for in the last step: seed·c_t
  double base[kMaxTasks] = {};     // the weights a step seeds with (configured, scheduled...)
  double param[kMaxTasks] = {};    // a learned number per task (log-variances, logits...)
  double adam_m[kMaxTasks] = {}, adam_v[kMaxTasks] = {};
  double adam_steps = 0;
  double reference[kMaxTasks] = {};  // losses a strategy compares with (first step, last step)
  double have_reference = 0;
  double sums[kMaxTasks] = {};  // running sums over steps (static-from-norms: Σ‖g_t‖)
  double sum_steps = 0;
  double warm[kMaxTasks] = {};  // the last solve's solution, a warm start for the next
};

// Adam on n numbers of the state (x -= lr·m̂/(sqrt(v̂)+ε), PyTorch's formula, with PyTorch's L2
// weight decay: g += decay·x). A gradient too large to square in double is clipped.
POLYTASK_HOST_DEVICE inline void adam_step(State& s, double lr, double decay, int n, double* x,
                                           const double* grad) {
  s.adam_steps += 1;
  const double c1 = 1 - pow(0.9, s.adam_steps), c2 = 1 - pow(0.999, s.adam_steps);
  for (int i = 0; i < n; ++i) {
    double g = grad[i] + decay * x[i];
    g = g > 1e150 ? 1e150 : (g < -1e150 ? -1e150 : g);
    s.adam_m[i] = 0.9 * s.adam_m[i] + 0.1 * g;
    s.adam_v[i] = 0.999 * s.adam_v[i] + 0.001 * g * g;
    x[i] -= lr * (s.adam_m[i] / c1) / (sqrt(s.adam_v[i] / c2) + 1e-8);
  }
}

// The bounds an adaptive weight never leaves (engine/balancer.h's kMin/kMaxBalancedWeight).
POLYTASK_HOST_DEVICE inline double clamp_weight(double w) {
  if (!(w == w)) return 1e-6;
  return w < 1e-6 ? 1e-6 : (w > 1e6 ? 1e6 : w);
}

// Seeds from state.base: the strategies whose weights only change between epochs share it.
POLYTASK_HOST_DEVICE inline void base_seeds(const Settings& s, const State& st, double* seeds) {
  for (int t = 0; t < s.tasks; ++t) seeds[t] = st.base[t];
}

}  // namespace polytask::kernels::balance

#include "kernels/balance/strategies.h"

namespace polytask::kernels::balance {

// seeds[t] for task t's loss backward, from the batch's losses (finite on the host; on the
// device a non-finite loss is reported at the epoch's end).
POLYTASK_HOST_DEVICE inline void seeds(const Settings& settings, State& state,
                                       const double* losses, uint64_t step, double* out) {
  dispatch_seeds(settings, state, losses, step, out);
}

// The coefficients c_t of dz = Σ_t c_t·g_t, from the Gram matrix (T×T row-major; only its upper
// triangle, i <= j, is read) of g_t = seeds[t]·∂L_t/∂z. Sets state.weights[t] = seeds[t]·c_t.
POLYTASK_HOST_DEVICE inline void combine(const Settings& settings, State& state,
                                         const double* gram_upper, const double* losses,
                                         const double* seeds, uint64_t step, double* coefficients) {
  const int n = settings.tasks;
  double gram[kMaxTasks * kMaxTasks] = {};  // zeroed: GCC cannot see that n <= kMaxTasks
  for (int i = 0; i < n; ++i)
    for (int j = i; j < n; ++j) gram[i * n + j] = gram[j * n + i] = gram_upper[i * n + j];
  for (int t = 0; t < n; ++t) coefficients[t] = 1;
  dispatch_combine(settings, state, gram, losses, seeds, step, coefficients);
  for (int t = 0; t < n; ++t) state.weights[t] = seeds[t] * coefficients[t];
}

namespace cuda {

// The device versions (kernels/cuda/balance.cu): one-thread kernels, asynchronous on `stream`,
// every pointer device memory. The losses are the tasks' f32 loss scalars; device_step, when
// set, is read instead of `step` (CUDA graphs freeze arguments at capture).
struct LossPointers {
  const float* loss[kMaxTasks];
};
// Writes the seeds as f32 (what the loss kernels read) and f64 (what combine reads).
void seeds(const Settings& settings, State* state, LossPointers losses, uint64_t step,
           const uint64_t* device_step, float* seeds32, double* seeds64,
           kernels::cuda::Stream stream);
// Writes the coefficients as f32 (what the weighted sum reads) and adds state->weights to
// weight_sums (an epoch's running sums, for the logs).
void combine(const Settings& settings, State* state, const double* gram_upper, LossPointers losses,
             const double* seeds64, uint64_t step, const uint64_t* device_step,
             float* coefficients32, double* weight_sums, kernels::cuda::Stream stream);

}  // namespace cuda
}  // namespace polytask::kernels::balance
