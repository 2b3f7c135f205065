// A task's loss and metrics bound to the model output it reads: validated once against the
// output's shape when a network is compiled, then run every step on pre-allocated buffers.
#pragma once

#include <vector>

#include "engine/layer.h"
#include "engine/task.h"
#include "kernels/cuda/stream.h"

namespace polytask {

class TaskLoss {
 public:
  // `producer` names the layer that makes the output, for error messages.
  TaskLoss(const Task& task, const Shape& output_sample, const std::string& producer);

  // (batch,) class indices or (batch, *output) values.
  Shape target_sample_shape() const;
  DType target_dtype(DType compute) const;
  // Per-step buffer the loss keeps between forward and backward (softmax probabilities).
  std::vector<AuxSpec> aux(int64_t batch) const;

  // loss (a one-element tensor of the compute dtype) = mean loss over the batch. A bad class
  // label throws naming the row — on the GPU with deferred checks (set_deferred_checks), it is
  // recorded with `step` and reported by take_device_sums instead, so the step reads nothing.
  void forward(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
               const Tensor& loss, uint64_t step = 0,
               const uint64_t* device_step = nullptr) const;
  // dpred = seed · ∂loss/∂pred; on the GPU the seed may instead be read from device memory
  // (device_seed, for CUDA graphs).
  void backward(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
                double seed, const Tensor& dpred, GradMode mode,
                const float* device_seed = nullptr) const;
  // Adds this batch's metric sums (correct predictions, absolute errors) to `sums`, one per
  // metric of the task, and returns the number of units each sum counts (examples for
  // accuracy, elements for MAE).
  void accumulate_metrics(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
                          std::vector<double>& sums, std::vector<double>& counts) const;

  // Adds the number of units each metric's sum counts in this batch (examples for accuracy,
  // elements for MAE).
  void add_metric_counts(const Tensor& pred, std::vector<double>& counts) const;
  // GPU epochs: the batch's loss (times its rows) and metric sums are added to sums kept on the
  // device; take_device_sums reads them (one round trip) as {Σ loss·rows, metric sums...},
  // zeroes them, and throws if a deferred label check failed.
  void accumulate_on_device(const Tensor& pred, const Tensor& target, const Tensor& loss) const;
  std::vector<double> take_device_sums() const;
  void set_deferred_checks(bool deferred) { deferred_checks_ = deferred; }

  const Task& task() const { return task_; }

 private:
  // CUDA only: the device's report of a bad label, and the metric sums the kernels add into.
  // Allocated at the first CUDA step; read back after each call (the host keeps the totals).
  void ensure_device_buffers() const;
  // Adds this batch's metric sums into sums[0, metrics) on the device.
  void add_device_metric_sums(const Tensor& pred, const Tensor& target, double* sums,
                              kernels::cuda::Stream stream) const;

  Task task_;
  std::vector<MetricKind> metrics_;  // resolved once: accumulate_metrics runs every step
  mutable Tensor bad_label_row_;     // (1,) i32
  mutable Tensor metric_sums_;       // (metrics,) f64
  mutable Tensor device_sums_;       // (1 + metrics,) f64: Σ loss·rows, then the metric sums
  mutable Tensor first_bad_label_;   // (2,) f64: {step, row} of the first bad label, or -1
  bool deferred_checks_ = false;
  Shape output_;
  int64_t classes_ = 0;  // cross-entropy only
};

}  // namespace polytask
