// Running sums over an epoch that the GPU keeps on the device, so that a step needs no read
// back: each task's loss sum, the first bad label seen, and the fan-out's gradient statistics
// (norms, pairwise cosines, conflicts) from the per-task gradients' Gram matrix. The CPU path
// computes the same statistics with the same function.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/philox.h"  // POLYTASK_HOST_DEVICE

namespace polytask::kernels {

// Layout of the gradient-statistics sums for T tasks (doubles):
//   [0, T)            Σ ‖g_t‖ over the steps
//   [T, T+T²)         Σ cos(g_i, g_j) over the steps where both norms are positive
//   [T+T², T+2T²)     Σ [<g_i, g_j> < 0] over those steps
//   [T+2T², T+3T²)    how many steps that was, per pair
//   [T+3T²]           steps where some ‖g_t‖² was not finite
//   [T+3T²+1]         the first task whose ‖g_t‖² was not finite (-1: none yet)
struct GramStatisticsLayout {
  int tasks = 0;
  POLYTASK_HOST_DEVICE int64_t norms() const { return 0; }
  POLYTASK_HOST_DEVICE int64_t cosines() const { return tasks; }
  POLYTASK_HOST_DEVICE int64_t conflicts() const { return tasks + int64_t(tasks) * tasks; }
  POLYTASK_HOST_DEVICE int64_t pair_steps() const { return tasks + 2 * int64_t(tasks) * tasks; }
  POLYTASK_HOST_DEVICE int64_t nonfinite_steps() const { return tasks + 3 * int64_t(tasks) * tasks; }
  POLYTASK_HOST_DEVICE int64_t first_nonfinite_task() const { return nonfinite_steps() + 1; }
  POLYTASK_HOST_DEVICE int64_t size() const { return first_nonfinite_task() + 1; }
};

// Adds one step's statistics, from the T×T Gram matrix (row-major; only its upper triangle,
// i <= j, is read) of the per-task gradients, to `sums` (GramStatisticsLayout). One definition
// for the host and the device.
POLYTASK_HOST_DEVICE inline void add_gram_statistics(int tasks, const double* gram, double* sums) {
  const GramStatisticsLayout at{tasks};
  bool finite = true;
  for (int i = 0; i < tasks; ++i) {
    const double squared = gram[i * tasks + i];
    if (!(squared <= 1.7976931348623157e308)) {  // NaN or inf
      if (finite && sums[at.first_nonfinite_task()] < 0) sums[at.first_nonfinite_task()] = i;
      finite = false;
    }
    sums[at.norms() + i] += sqrt(squared);
  }
  if (!finite) sums[at.nonfinite_steps()] += 1;
  for (int i = 0; i < tasks; ++i) {
    const double ni = sqrt(gram[i * tasks + i]);
    for (int j = 0; j < tasks; ++j) {
      const double nj = sqrt(gram[j * tasks + j]);
      if (!(ni > 0 && nj > 0)) continue;
      const double g = i <= j ? gram[i * tasks + j] : gram[j * tasks + i];
      const double cosine = g / (ni * nj);
      sums[at.cosines() + i * tasks + j] += cosine < -1 ? -1 : (cosine > 1 ? 1 : cosine);
      sums[at.conflicts() + i * tasks + j] += g < 0 ? 1 : 0;
      sums[at.pair_steps() + i * tasks + j] += 1;
    }
  }
}

namespace cuda {

// The device versions (kernels/cuda/epoch_stats.cu), each one tiny launch, asynchronous on
// `stream`; every pointer is device memory.
void add_gram_statistics(int tasks, const double* gram, double* sums, Stream stream);
// *total += double(*value) · scale (a task's loss sum: the batch's mean loss times its rows).
void add_scaled(const float* value, double scale, double* total, Stream stream);
// Keeps the first (step, row) whose label was bad: first[0] = step and first[1] = *batch_bad_row
// when *batch_bad_row >= 0 and first[0] < 0 (first starts at {-1, -1}; doubles, exact to 2^53).
// device_step, when set, is read instead of `step` (CUDA graphs freeze arguments at capture).
void keep_first_bad_label(const int* batch_bad_row, int64_t step, double* first, Stream stream,
                          const uint64_t* device_step = nullptr);

}  // namespace cuda
}  // namespace polytask::kernels
