// A task's loss and metrics bound to the model output it reads: validated once against the
// output's shape when a network is compiled, then run every step on pre-allocated buffers.
#pragma once

#include <vector>

#include "engine/layer.h"
#include "engine/task.h"

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

  // loss (a one-element tensor of the compute dtype) = mean loss over the batch.
  void forward(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
               const Tensor& loss) const;
  // dpred = seed · ∂loss/∂pred.
  void backward(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
                double seed, const Tensor& dpred, GradMode mode) const;
  // Adds this batch's metric sums (correct predictions, absolute errors) to `sums`, one per
  // metric of the task, and returns the number of units each sum counts (examples for
  // accuracy, elements for MAE).
  void accumulate_metrics(const Tensor& pred, const Tensor& target, std::span<const Tensor> aux,
                          std::vector<double>& sums, std::vector<double>& counts) const;

  const Task& task() const { return task_; }

 private:
  // CUDA only: the device's report of a bad label, and the metric sums the kernels add into.
  // Allocated at the first CUDA step; read back after each call (the host keeps the totals).
  void ensure_device_buffers() const;

  Task task_;
  std::vector<MetricKind> metrics_;  // resolved once: accumulate_metrics runs every step
  mutable Tensor bad_label_row_;     // (1,) i32
  mutable Tensor metric_sums_;       // (metrics,) f64
  Shape output_;
  int64_t classes_ = 0;  // cross-entropy only
};

}  // namespace polytask
