#include "engine/fan_out.h"

#include <algorithm>
#include <cmath>

#include "engine/balancers/grad_ops.h"
#include "engine/balancers/program.h"
#include "engine/device.h"
#include "engine/host_staging.h"
#include "kernels/balance.h"
#include "kernels/epoch_stats.h"

namespace polytask {

namespace {
namespace kb = kernels::balance;
static_assert(sizeof(kb::State) % sizeof(double) == 0);

balancing::ProgramBalancer* program_of(Balancer& b) {
  return dynamic_cast<balancing::ProgramBalancer*>(&b);
}

// The device kernels, or an error in a build without CUDA (no tensor is on a GPU there, so
// balances_on_device() is false and these are never reached).
#if defined(POLYTASK_WITH_CUDA)
constexpr auto device_seeds = kb::cuda::seeds;
constexpr auto device_combine = kb::cuda::combine;
#else
template <class... Args>
[[noreturn]] void device_seeds(Args&&...) {
  fail("balancing on the GPU: this build has no CUDA");
}
template <class... Args>
[[noreturn]] void device_combine(Args&&...) {
  fail("balancing on the GPU: this build has no CUDA");
}
#endif
}  // namespace

FanOut::FanOut(std::vector<std::string> task_names, std::vector<double> weights,
               std::string representation, const Shape& z_sample, int64_t max_batch, DType dtype,
               Device device)
    : names_(std::move(task_names)), representation_(std::move(representation)) {
  const size_t tasks = names_.size();
  for (size_t t = 0; t < tasks; ++t) {
    if (!std::isfinite(weights[t]) || weights[t] < 0)
      fail("task '", names_[t], "': loss weight must be finite and non-negative, got ", weights[t]);
    task_grads_.push_back(Tensor::zeros(z_sample.with_batch(max_batch), dtype, device));
  }
  task_views_.resize(tasks);
  losses_.assign(tasks, 0.0);
  seeds_ = weights;
  configured_ = weights;
  gram_.assign(tasks * tasks, 0.0);
  balancer_ = make_balancer({});
  balancer_->bind({names_, weights, z_sample.with_batch(max_batch), dtype, device});
  prepare_device_balancing();
  reset_diagnostics();
}

size_t FanOut::task_index(const std::string& name) const {
  for (size_t t = 0; t < names_.size(); ++t)
    if (names_[t] == name) return t;
  std::string known;
  for (const auto& n : names_) known += (known.empty() ? "" : ", ") + n;
  fail("no task named '", name, "' (tasks: ", known, ")");
}

void FanOut::set_balancer(std::unique_ptr<Balancer> balancer) {
  if (!balancer) fail("set_balancer: no balancer given");
  if (backwards_ > 0)
    fail("cannot switch the balancer from '", balancer_->name(), "' to '", balancer->name(),
         "' after training started (", backwards_, " steps taken): what '", balancer_->name(),
         "' learned would be lost; start a new run to use another balancer");
  if (!balancer->bound()) {
    BalancerBinding binding{names_, configured_, task_grads_[0].shape(), task_grads_[0].dtype(),
                            task_grads_[0].device()};
    balancer->bind(binding);
  } else if (balancer->task_count() != names_.size()) {
    fail("set_balancer: the balancer is bound to ", balancer->task_count(),
         " tasks, the fan-out has ", names_.size());
  }
  balancer_ = std::move(balancer);
  for (size_t t = 0; t < names_.size(); ++t) seeds_[t] = balancer_->weights()[t];
  prepare_device_balancing();
  reset_diagnostics();
}

void FanOut::set_weight(size_t t, double weight) {
  if (t >= names_.size()) fail("task ", t, " does not exist");
  sync_balancer_state();  // the device's steps first: the upload replaces its state
  balancer_->set_weight(t, weight);
  seeds_[t] = configured_[t] = weight;
}

void FanOut::begin_backward(uint64_t step, std::span<const double> task_losses) {
  if (balances_on_device()) {
    // The seeds come from launch_device_seeds; what the host changed goes up first (never
    // while a graph is captured: the stage_step before it has already uploaded).
    upload_balancer_state();
    step_ = step;
    return;
  }
  // No losses: the network did not read them (needs_step_losses() is false).
  for (size_t t = 0; t < task_losses.size(); ++t) {
    if (!std::isfinite(task_losses[t]))
      fail("the loss of task '", names_[t], "' is ", task_losses[t], " at step ", step + 1,
           "; the balancer cannot weight a non-finite loss (lower the learning rate or check the "
           "data)");
    losses_[t] = task_losses[t];
  }
  step_ = step;
  balancer_->loss_seeds(step, losses_, seeds_);
  for (size_t t = 0; t < names_.size(); ++t)
    if (!std::isfinite(seeds_[t]) || seeds_[t] < 0)
      fail("balancer '", balancer_->name(), "' seeded task '", names_[t], "' with ", seeds_[t],
           " at step ", step + 1);
}

bool FanOut::needs_step_losses() const {
  if (task_grads_[0].device() == Device::CPU) return true;
  return !balances_on_device() && balancer_->needs_step_losses();
}

bool FanOut::statistics_on_device() const {
  return task_grads_[0].device() == Device::CUDA &&
         (balances_on_device() || (!balancer_->needs_gram() && !balancer_->needs_step_losses()));
}

bool FanOut::balances_on_device() const {
  if (task_grads_[0].device() != Device::CUDA) return false;
  const auto* program = program_of(*balancer_);
  return program != nullptr;  // static is not one: its seeds are known on the host
}

void FanOut::prepare_device_balancing() {
  device_ahead_ = false;
  uploaded_version_ = 0;
  if (!balances_on_device() || device_state_.defined()) return;
  const int64_t tasks = int64_t(names_.size());
  device_state_ =
      Tensor::zeros({int64_t(sizeof(kb::State) / sizeof(double))}, DType::F64, Device::CUDA);
  device_seeds32_ = Tensor::zeros({tasks}, DType::F32, Device::CUDA);
  device_seeds64_ = Tensor::zeros({tasks}, DType::F64, Device::CUDA);
  device_coefficients_ = Tensor::zeros({tasks}, DType::F32, Device::CUDA);
  device_weight_sums_ = Tensor::zeros({tasks}, DType::F64, Device::CUDA);
}

void FanOut::set_device_losses(std::vector<const float*> losses) {
  if (losses.size() != names_.size())
    fail("fan-out: ", losses.size(), " device losses for ", names_.size(), " tasks");
  device_losses_ = std::move(losses);
}

void FanOut::upload_balancer_state() {
  const auto* program = program_of(*balancer_);
  if (program->state_version() == uploaded_version_) return;
  static_assert(sizeof(kb::State) <= 1024, "the balancer state must fit a host staging slot");
  host_staging().upload(device_state_.raw(), &program->program_state(), sizeof(kb::State),
                        "the balancer's state");
  uploaded_version_ = program->state_version();
}

void FanOut::launch_device_seeds(uint64_t step, const uint64_t* device_step) {
  if (device_losses_.size() != names_.size())
    fail("fan-out: device balancing needs the tasks' device losses (set_device_losses)");
  kb::cuda::LossPointers losses{};
  for (size_t t = 0; t < names_.size(); ++t) losses.loss[t] = device_losses_[t];
  device_seeds(program_of(*balancer_)->settings(), static_cast<kb::State*>(device_state_.raw()),
               losses, step, device_step, device_seeds32_.data<float>(),
               device_seeds64_.data<double>(), cuda_stream());
  device_step_ = device_step;
  device_ahead_ = true;
}

const float* FanOut::device_seed(size_t t) const {
  return balances_on_device() ? device_seeds32_.data<float>() + t : nullptr;
}

void FanOut::sync_balancer_state() const {
  if (!balances_on_device() || !device_ahead_) return;
  kb::State state;
  copy_bytes(&state, Device::CPU, device_state_.raw(), Device::CUDA, sizeof(state));
  program_of(*balancer_)->take_device_state(state);
  device_ahead_ = false;
}

void FanOut::fail_nonfinite_gradient(size_t task, const std::string& when) const {
  fail("the gradient of task '", names_[task], "' at the fan-out '", representation_,
       "' is not finite ", when, "; lower the learning rate or check the data");
}

void FanOut::combine(int64_t batch, const Tensor& dz) {
  batch_ = batch;
  const size_t tasks = names_.size();
  for (size_t t = 0; t < tasks; ++t) task_views_[t] = task_grads_[t].slice(0, batch);
  if (balances_on_device()) {
    gram_on_device_and_statistics();
    kb::cuda::LossPointers losses{};
    for (size_t t = 0; t < tasks; ++t) losses.loss[t] = device_losses_[t];
    device_combine(program_of(*balancer_)->settings(), static_cast<kb::State*>(device_state_.raw()),
                   device_gram_.data<double>(), losses, device_seeds64_.data<double>(), step_,
                   device_step_, device_coefficients_.data<float>(),
                   device_weight_sums_.data<double>(), cuda_stream());
    if (dz.defined())
      balancing::weighted_sum_device_coefficients(device_coefficients_, task_views_, dz);
    count_replayed_step(step_, batch);
    return;
  }
  if (statistics_on_device()) {
    gram_on_device_and_statistics();
  } else {
    for (size_t i = 0; i < tasks; ++i)
      for (size_t j = i; j < tasks; ++j)
        gram_[i * tasks + j] = gram_[j * tasks + i] =
            balancing::dot(task_views_[i], task_views_[j]);
    if (comm_ && !comm_->single_process())
      comm_->allreduce_sum(gram_.data(), gram_.size(), "the fan-out's Gram matrix");
    for (size_t t = 0; t < tasks; ++t)
      if (!std::isfinite(gram_[t * tasks + t]))
        fail_nonfinite_gradient(t, cat("at step ", step_ + 1, " (its loss was ", losses_[t], ")"));
    kernels::add_gram_statistics(int(tasks), gram_.data(), gram_sums_.data());
  }
  TaskGradients g;
  g.grads = task_views_;
  g.gram = gram_;
  g.losses = losses_;
  g.seeds = seeds_;
  g.step = step_;
  balancer_->combine(g, dz);
  count_replayed_step(step_, batch);  // the same counts a replayed step makes
}

void FanOut::gram_on_device_and_statistics() {
  balancing::device_gram(task_views_, device_gram_);
  if (comm_ && !comm_->single_process())
    comm_->allreduce_sum_device(device_gram_.data<double>(), size_t(device_gram_.numel()),
                                "the fan-out's Gram matrix");
  balancing::device_add_gram_statistics(int(names_.size()), device_gram_, device_gram_sums_);
}

// Also the tail of every combine(): the host's part of a step.
void FanOut::count_replayed_step(uint64_t step, int64_t batch) {
  step_ = step;
  batch_ = batch;
  ++backwards_;
  ++sums_.steps;
  if (balances_on_device()) return;  // the device sums the weights
  for (size_t i = 0; i < names_.size(); ++i) sums_.weights[i] += balancer_->weights()[i];
}

BalanceDiagnostics FanOut::take_diagnostics() {
  if (balances_on_device()) {
    const std::vector<double> weight_sums = device_weight_sums_.to_vector<double>();
    for (size_t t = 0; t < names_.size(); ++t) sums_.weights[t] = weight_sums[t];
    sync_balancer_state();
  }
  BalanceDiagnostics out = sums_;
  const size_t tasks = names_.size();
  const kernels::GramStatisticsLayout at{int(tasks)};
  std::vector<double> stats = gram_sums_;
  if (device_gram_sums_.defined()) {
    const std::vector<double> device = device_gram_sums_.to_vector<double>();
    for (size_t k = 0; k < stats.size(); ++k)
      if (int64_t(k) != at.first_nonfinite_task()) stats[k] += device[k];
    if (device[size_t(at.nonfinite_steps())] > 0)
      fail_nonfinite_gradient(size_t(device[size_t(at.first_nonfinite_task())]),
                              cat("in ", device[size_t(at.nonfinite_steps())], " of the last ",
                                  sums_.steps, " steps"));
  }
  out.grad_norm.assign(tasks, NAN);
  out.cosine.assign(tasks * tasks, NAN);
  out.conflict.assign(tasks * tasks, NAN);
  if (out.steps == 0) {
    // No step taken: the weights the next step starts from, no gradients.
    out.weights.assign(balancer_->weights().begin(), balancer_->weights().end());
  } else {
    for (size_t t = 0; t < tasks; ++t) {
      out.weights[t] /= double(out.steps);
      out.grad_norm[t] = stats[size_t(at.norms()) + t] / double(out.steps);
    }
    for (size_t k = 0; k < tasks * tasks; ++k) {
      const double counted = stats[size_t(at.pair_steps()) + k];
      if (counted > 0) {
        out.cosine[k] = stats[size_t(at.cosines()) + k] / counted;
        out.conflict[k] = stats[size_t(at.conflicts()) + k] / counted;
      }
    }
  }
  reset_diagnostics();
  return out;
}

void FanOut::end_epoch(const EpochSummary& summary) {
  sync_balancer_state();  // the device's steps first: what end_epoch changes is uploaded
  balancer_->end_epoch(summary);
}

void FanOut::reset_diagnostics() {
  const size_t tasks = names_.size();
  const kernels::GramStatisticsLayout at{int(tasks)};
  sums_.steps = 0;
  sums_.weights.assign(tasks, 0.0);
  gram_sums_.assign(size_t(at.size()), 0.0);
  gram_sums_[size_t(at.first_nonfinite_task())] = -1;
  if (task_grads_[0].device() == Device::CUDA) {
    if (!device_gram_.defined()) {
      device_gram_ = Tensor::zeros({int64_t(tasks * tasks)}, DType::F64, Device::CUDA);
      device_gram_sums_ = Tensor::empty({at.size()}, DType::F64, Device::CUDA);
    }
    device_gram_sums_.copy_from(Tensor::from_vector<double>({at.size()}, gram_sums_));
  }
  if (device_weight_sums_.defined()) device_weight_sums_.zero();
}

}  // namespace polytask
