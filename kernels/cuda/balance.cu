// The balancing strategies' per-step arithmetic (kernels/balance.h) on the device: one-thread
// kernels on T numbers and a T×T matrix. Their cost is a launch (nothing inside a CUDA graph)
// and a few microseconds of one thread; what they save is a device-to-host round trip per step,
// and with it the graph.
#include "kernels/balance.h"
#include "kernels/cuda/launch.h"

namespace polytask::kernels::balance::cuda {

namespace {

using kernels::cuda::launch;

__global__ void seeds_kernel(Settings settings, State* state, LossPointers losses, uint64_t step,
                             const uint64_t* device_step, float* seeds32, double* seeds64) {
  double l[kMaxTasks] = {}, s[kMaxTasks] = {};
  for (int t = 0; t < settings.tasks; ++t) l[t] = double(*losses.loss[t]);
  balance::seeds(settings, *state, l, device_step ? *device_step : step, s);
  for (int t = 0; t < settings.tasks; ++t) {
    seeds32[t] = float(s[t]);
    seeds64[t] = s[t];
  }
}

__global__ void combine_kernel(Settings settings, State* state, const double* gram,
                               LossPointers losses, const double* seeds64, uint64_t step,
                               const uint64_t* device_step, float* coefficients32,
                               double* weight_sums) {
  double l[kMaxTasks] = {}, c[kMaxTasks] = {};
  for (int t = 0; t < settings.tasks; ++t) l[t] = double(*losses.loss[t]);
  balance::combine(settings, *state, gram, l, seeds64, device_step ? *device_step : step, c);
  for (int t = 0; t < settings.tasks; ++t) {
    coefficients32[t] = float(c[t]);
    weight_sums[t] += state->weights[t];
  }
}

}  // namespace

void seeds(const Settings& settings, State* state, LossPointers losses, uint64_t step,
           const uint64_t* device_step, float* seeds32, double* seeds64,
           kernels::cuda::Stream stream) {
  launch("balancer seeds", seeds_kernel, dim3(1), dim3(1), 0, stream, settings, state, losses, step,
         device_step, seeds32, seeds64);
}

void combine(const Settings& settings, State* state, const double* gram_upper, LossPointers losses,
             const double* seeds64, uint64_t step, const uint64_t* device_step,
             float* coefficients32, double* weight_sums, kernels::cuda::Stream stream) {
  launch("balancer combine", combine_kernel, dim3(1), dim3(1), 0, stream, settings, state,
         gram_upper, losses, seeds64, step, device_step, coefficients32, weight_sums);
}

}  // namespace polytask::kernels::balance::cuda
