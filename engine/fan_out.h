// The fan-out point: where the shared representation z meets the task heads.
//
// Forward, z is computed once and read by every head. Backward, each task's loss is seeded
// with loss_seed(t) (its loss weight), its head runs backward into a gradient buffer of its
// own, and combine() merges those per-task gradients into dz before the trunk runs backward
// once:  dz = Σ_t ∂(seed_t · L_t)/∂z = Σ_t w_t · ∂L_t/∂z.
//
// Gradient-balancing methods plug in here: they may change the seeds and how the per-task
// gradients are combined (PCGrad projections, MGDA's min-norm weights); task_gradient(t)
// hands the per-task gradients out before they are summed.
#pragma once

#include <string>
#include <vector>

#include "engine/tensor.h"

namespace polytask {

class FanOut {
 public:
  FanOut(std::vector<std::string> task_names, std::vector<double> weights,
         std::string representation, const Shape& z_sample, int64_t max_batch, DType dtype,
         Device device);

  size_t task_count() const { return names_.size(); }
  const std::string& task_name(size_t t) const { return names_[t]; }
  size_t task_index(const std::string& name) const;  // throws naming the known tasks
  // The name of the shared representation z (the value the heads read).
  const std::string& representation() const { return representation_; }

  double weight(size_t t) const { return weights_[t]; }
  // Takes effect at the next step; nothing is rebuilt. Must be finite and non-negative.
  void set_weight(size_t t, double weight);
  void set_weight(const std::string& task, double weight) { set_weight(task_index(task), weight); }

  // What task t's loss backward is seeded with.
  double loss_seed(size_t t) const { return weights_[t]; }

  // ∂(seed_t · L_t)/∂z from the last backward, (batch, *z).
  Tensor task_gradient(size_t t) const { return task_grads_[t].slice(0, batch_); }
  // The full-capacity buffer head t writes into (for the network's plan).
  const Tensor& task_gradient_buffer(size_t t) const { return task_grads_[t]; }

  // dz (batch, *z) = the combination of the per-task gradients (their sum). An undefined dz
  // (z is a model input) only records the batch size.
  void combine(int64_t batch, const Tensor& dz);

 private:
  std::vector<std::string> names_;
  std::vector<double> weights_;
  std::string representation_;
  std::vector<Tensor> task_grads_;
  int64_t batch_ = 0;
};

}  // namespace polytask
