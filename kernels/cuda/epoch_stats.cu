// Single-thread kernels: each updates a handful of scalars once per step. Their cost is the
// launch alone (a few µs, or nothing inside a CUDA graph), and they save a device-to-host
// round trip per step.
#include "kernels/cuda/launch.h"
#include "kernels/epoch_stats.h"

namespace polytask::kernels::cuda {

namespace {

__global__ void gram_statistics_kernel(int tasks, const double* gram, double* sums) {
  kernels::add_gram_statistics(tasks, gram, sums);
}

__global__ void add_scaled_kernel(const float* value, double scale, double* total) {
  *total += double(*value) * scale;
}

__global__ void keep_first_bad_label_kernel(const int* batch_bad_row, int64_t step,
                                            const uint64_t* device_step, double* first) {
  if (*batch_bad_row >= 0 && first[0] < 0) {
    first[0] = device_step ? double(*device_step) : double(step);
    first[1] = double(*batch_bad_row);
  }
}

}  // namespace

void add_gram_statistics(int tasks, const double* gram, double* sums, Stream stream) {
  launch("gradient statistics", gram_statistics_kernel, dim3(1), dim3(1), 0, stream, tasks, gram,
         sums);
}

void add_scaled(const float* value, double scale, double* total, Stream stream) {
  launch("loss sum", add_scaled_kernel, dim3(1), dim3(1), 0, stream, value, scale, total);
}

void keep_first_bad_label(const int* batch_bad_row, int64_t step, double* first, Stream stream,
                          const uint64_t* device_step) {
  launch("label check", keep_first_bad_label_kernel, dim3(1), dim3(1), 0, stream, batch_bad_row,
         step, device_step, first);
}

}  // namespace polytask::kernels::cuda
