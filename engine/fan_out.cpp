#include "engine/fan_out.h"

#include <cmath>

#include "engine/dispatch.h"
#include "kernels/elementwise.h"

namespace polytask {

FanOut::FanOut(std::vector<std::string> task_names, std::vector<double> weights,
               std::string representation, const Shape& z_sample, int64_t max_batch, DType dtype,
               Device device)
    : names_(std::move(task_names)), representation_(std::move(representation)) {
  weights_.resize(names_.size());
  for (size_t t = 0; t < names_.size(); ++t) {
    set_weight(t, weights[t]);
    task_grads_.push_back(Tensor::zeros(z_sample.with_batch(max_batch), dtype, device));
  }
}

size_t FanOut::task_index(const std::string& name) const {
  for (size_t t = 0; t < names_.size(); ++t)
    if (names_[t] == name) return t;
  std::string known;
  for (const auto& n : names_) known += (known.empty() ? "" : ", ") + n;
  fail("no task named '", name, "' (tasks: ", known, ")");
}

void FanOut::set_weight(size_t t, double weight) {
  if (!std::isfinite(weight) || weight < 0)
    fail("task '", names_[t], "': loss weight must be finite and non-negative, got ", weight);
  weights_[t] = weight;
}

void FanOut::combine(int64_t batch, const Tensor& dz) {
  batch_ = batch;
  if (!dz.defined()) return;  // z is a model input: nothing upstream needs its gradient
  dispatch_cpu_float("fan-out combine", dz, [&]<class T>() {
    for (size_t t = 0; t < task_grads_.size(); ++t)
      kernels::cpu::scale_grad<T>(dz.numel(), T(1), task_grads_[t].data<T>(), dz.data<T>(),
                                  t == 0 ? kernels::GradMode::Overwrite : kernels::GradMode::Accumulate);
  });
}

}  // namespace polytask
