// RLW, random loss weighting (Lin, Ye, Xu, Shi & Zhang 2022, "Reasonable Effectiveness of Random
// Weighting: A Litmus Test for Multi-Task Learning", TMLR), as LibMTL trains it by default
// (LibMTL/weighting/RLW.py, dist 'Normal'): every step draws ε ~ N(0, I_T) afresh and weights
// the losses by softmax(ε). Here the configured weights c_t (positive) act as a prior and set
// the scale:
//   seeds_t = K · softmax(log c + ε)_t = K · c_t·exp(ε_t) / Σ_j c_j·exp(ε_j),   K = Σ_t c_t,
// so Σ_t seeds_t = K, the total loss scale of static with the same weights (T with all
// weights 1, where the seeds are exactly T·softmax(ε): LibMTL's weights, which sum to 1, times
// T). Coefficients stay 1. |ε| < 8.6 here (53-bit uniforms), so the seeds are finite and
// positive (unless two configured weights differ by a factor over 1e300): no clamp is needed.
//
// ε_t is a pure function of (settings.seed, step, t): Box-Muller, in double, on two 53-bit
// uniforms from one Philox4x32-10 block (kernels/philox.h; counter = (t | "RLW" tag, step),
// key = seed). Deterministic, identical on resume (no state to checkpoint), and the same
// formula on the host and the device (their cos/log may differ in the last bit).
#pragma once

namespace polytask::kernels::balance {

// One standard normal for task `task` at `step` under `seed`.
POLYTASK_HOST_DEVICE inline double rlw_normal(uint64_t seed, uint64_t step, int task) {
  // The tag keeps RLW's blocks apart from other Philox draws that share the seed and stream.
  const uint64_t block = (uint64_t(0x524c57u) << 32) | uint64_t(uint32_t(task));
  const Philox4x32 r = philox_block(seed, step, block);
  const uint64_t a = (uint64_t(r.v[0]) << 21) | (uint64_t(r.v[1]) >> 11);  // 53 bits
  const uint64_t b = (uint64_t(r.v[2]) << 21) | (uint64_t(r.v[3]) >> 11);
  const double u1 = (double(a) + 1) * 0x1p-53;  // (0, 1]: log(u1) is finite
  const double u2 = double(b) * 0x1p-53;        // [0, 1)
  return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

POLYTASK_HOST_DEVICE inline void rlw_seeds(const Settings& s, State&, const double*, uint64_t step,
                                           double* seeds) {
  const int n = s.tasks;
  double logit[kMaxTasks], largest = -INFINITY, sum = 0, total = 0;
  for (int t = 0; t < n; ++t) {
    logit[t] = log(s.configured[t]) + rlw_normal(s.seed, step, t);
    largest = logit[t] > largest ? logit[t] : largest;
    total += s.configured[t];
  }
  for (int t = 0; t < n; ++t) sum += (seeds[t] = exp(logit[t] - largest));
  for (int t = 0; t < n; ++t) seeds[t] = total * (seeds[t] / sum);
}

POLYTASK_HOST_DEVICE inline void rlw_combine(const Settings&, State&, const double*, const double*,
                                             const double*, uint64_t, double*) {}

}  // namespace polytask::kernels::balance
