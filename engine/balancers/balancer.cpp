// The Balancer base: binding, weights, state helpers.
#include "engine/balancer.h"

#include <algorithm>
#include <cmath>

#include "engine/balancers/grad_ops.h"
#include "kernels/error.h"

namespace polytask {

double clamp_weight(double w) {
  if (std::isnan(w)) return kMinBalancedWeight;
  return std::clamp(w, kMinBalancedWeight, kMaxBalancedWeight);
}

void Balancer::bind(const BalancerBinding& binding) {
  if (bound()) fail("balancer '", name(), "' is already bound to tasks");
  if (binding.tasks.empty()) fail("balancer '", name(), "': no tasks");
  if (binding.weights.size() != binding.tasks.size())
    fail("balancer '", name(), "': ", binding.weights.size(), " weights for ", binding.tasks.size(),
         " tasks");
  for (size_t t = 0; t < binding.tasks.size(); ++t)
    if (!std::isfinite(binding.weights[t]) || binding.weights[t] < 0)
      fail("balancer '", name(), "': task '", binding.tasks[t], "' has loss weight ",
           binding.weights[t], "; weights must be finite and non-negative");
  binding_ = binding;
  tasks_ = binding.tasks;
  initial_ = binding.weights;
  weights_ = binding.weights;
  try {
    on_bind();
  } catch (...) {
    tasks_.clear();
    throw;
  }
}

void Balancer::combine(const TaskGradients& g, const Tensor& dz) {
  if (!dz.defined()) return;
  balancing::plain_sum(g.grads, dz);
}

void Balancer::set_weight(size_t t, double weight) {
  if (!accepts_set_weight())
    fail("balancer '", name(),
         "' sets the loss weights itself; set_weight applies to the static "
         "and pcgrad balancers (configure the starting weights instead)");
  if (t >= weights_.size()) fail("balancer '", name(), "': task ", t, " does not exist");
  if (!std::isfinite(weight) || weight < 0)
    fail("task '", tasks_[t], "': loss weight must be finite and non-negative, got ", weight);
  weights_[t] = weight;
  weight_changed(t);
}

void Balancer::load_state(const NamedTensors& state) {
  if (!state.empty())
    fail("balancer '", name(), "' keeps no state, but the checkpoint holds '", state[0].first, "'");
}

void Balancer::require_positive_weights() const {
  for (size_t t = 0; t < tasks_.size(); ++t)
    if (!(initial_[t] > 0))
      fail("balancer '", name(), "': task '", tasks_[t], "' has loss weight ", initial_[t],
           "; this strategy needs positive starting weights (a task with weight 0 takes no part in "
           "training: remove it, or use the static balancer)");
}

void Balancer::expect_only(const NamedTensors& state, const std::vector<std::string>& keys) const {
  for (const auto& [key, t] : state)
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      fail("balancer '", name(), "': unexpected state '", key,
           "' in the checkpoint (it was saved by "
           "another balancer?)");
}

Tensor Balancer::vector_tensor(const std::vector<double>& values) const {
  return Tensor::from_vector<double>({int64_t(values.size())}, values);
}

std::vector<double> Balancer::read_vector(const NamedTensors& state, const std::string& key,
                                          size_t size) const {
  for (const auto& [name, t] : state) {
    if (name != key) continue;
    if (t.numel() != int64_t(size) || t.dtype() == DType::I32)
      fail("balancer '", this->name(), "': state '", key, "' is ", t.describe(), ", expected ",
           size, " numbers");
    std::vector<double> out(size);
    const Tensor host = t.to(Device::CPU);
    for (size_t i = 0; i < size; ++i) out[i] = host.item(int64_t(i));
    for (double v : out)
      if (!std::isfinite(v)) fail("balancer '", this->name(), "': state '", key, "' holds ", v);
    return out;
  }
  fail("balancer '", name(), "': the checkpoint lacks state '", key, "'");
}

}  // namespace polytask
