// The fan-out point: where the shared representation z meets the task heads.
//
// Forward, z is computed once and read by every head. Backward, each task's loss is seeded
// with loss_seed(t), its head runs backward into a gradient buffer of its own, and combine()
// merges those per-task gradients into dz before the trunk runs backward once. With the
// default (static) balancer:  dz = Σ_t ∂(w_t · L_t)/∂z = Σ_t w_t · ∂L_t/∂z.
//
// Gradient balancing plugs in here: the FanOut owns a Balancer (engine/balancer.h) that picks
// the seeds from the batch's task losses and combines the per-task gradients (PCGrad
// projections, MGDA's min-norm point, ...). task_gradient(t) hands the per-task gradients out.
//
// Diagnostics, every step, from the per-task gradient buffers (one Gram matrix of T(T+1)/2
// inner products over B·|z| numbers): each task's gradient norm ‖g_t‖ at z, the cosine of
// every pair (gradient conflict when negative) and whether it was negative, plus the weights
// the step used; their means over an epoch come out of take_diagnostics().
//
// On the GPU a step reads nothing back, whatever the strategy: the Gram matrix and its
// statistics stay on the device until take_diagnostics(), which is also where a non-finite task
// gradient is reported (on the CPU it is reported at the step itself). Static weights seed from
// the host; every other built-in strategy (a balancing::ProgramBalancer) runs its per-step
// arithmetic in one-thread kernels (kernels/balance.h) on a device copy of its state: seeds
// from the device losses before the heads' backward, coefficients from the device Gram matrix
// after it, dz as their weighted sum. The host's copy of the state is brought up to date once
// per epoch (take_diagnostics, end_epoch) and before a checkpoint (sync_balancer_state); what
// the host changes (end_epoch, set_weight, a loaded checkpoint) is uploaded before the next
// step. So every strategy's steps replay inside CUDA graphs.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/balancer.h"
#include "engine/communicator.h"
#include "engine/tensor.h"

namespace polytask {

// Means over the steps since the last take_diagnostics().
struct BalanceDiagnostics {
  int64_t steps = 0;
  std::vector<double> weights;  // per task: the weight each step gave the task
  std::vector<double> grad_norm;  // per task: ‖g_t‖ = ‖∂(seed_t·L_t)/∂z‖ over the whole batch
  // T×T row-major: cos(g_i, g_j), averaged over the steps where both gradients are non-zero;
  // NaN where there was none (a task with weight 0). The diagonal is 1.
  std::vector<double> cosine;
  // T×T row-major: the fraction of those steps where cos(g_i, g_j) < 0 (the steps PCGrad
  // projects). NaN where cosine is.
  std::vector<double> conflict;
  double cos(size_t i, size_t j) const { return cosine[i * weights.size() + j]; }
  double conflict_rate(size_t i, size_t j) const { return conflict[i * weights.size() + j]; }
};

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

  // Data-parallel training (Network::set_communicator): each step's Gram matrix of the per-task
  // gradients at z is summed over the ranks before the balancer decides, so every rank takes
  // the decision one process would take on the whole global batch. Null: one process.
  void set_communicator(Communicator* communicator) { comm_ = communicator; }

  // The strategy (static weights until set_balancer). Replacing it is allowed only before the
  // first backward: switching strategies mid-training would silently drop what the old one
  // learned, so it throws (start a new run, or resume with the same strategy).
  void set_balancer(std::unique_ptr<Balancer> balancer);
  Balancer& balancer() { return *balancer_; }
  const Balancer& balancer() const { return *balancer_; }

  // The weight task t counted for in the last step (before any step: the starting weight).
  // When the balancer runs on the device: as of the last sync_balancer_state (each epoch's end).
  double weight(size_t t) const { return balancer_->weights()[t]; }
  // Task t's configured loss weight: what the balancer started from, and the yardstick the
  // trainer's reported total loss uses (Σ_t c_t·L_t), so totals compare across balancers.
  double loss_weight(size_t t) const { return configured_[t]; }
  // Takes effect at the next step; nothing is rebuilt. Must be finite and non-negative.
  // Static and pcgrad balancers only (the others set their own weights).
  void set_weight(size_t t, double weight);
  void set_weight(const std::string& task, double weight) { set_weight(task_index(task), weight); }

  // What task t's loss backward is seeded with in the current step.
  double loss_seed(size_t t) const { return seeds_[t]; }

  // ∂(seed_t · L_t)/∂z from the last backward, (batch, *z).
  Tensor task_gradient(size_t t) const { return task_grads_[t].slice(0, batch_); }
  // The full-capacity buffer head t writes into (for the network's plan).
  const Tensor& task_gradient_buffer(size_t t) const { return task_grads_[t]; }

  // Step protocol (Network::backward): begin_backward with the batch's task losses (throws
  // naming the task when one is not finite) picks the seeds; the heads run backward; combine
  // writes dz (batch, *z) and records the diagnostics. An undefined dz (z is a model input)
  // only records the batch, the diagnostics and the balancer's own update.
  void begin_backward(uint64_t step, std::span<const double> task_losses);
  void combine(int64_t batch, const Tensor& dz);
  // Whether begin_backward needs this step's losses on the host (always on the CPU; on the GPU
  // only for balancers that read them). When not, the network passes none and the losses'
  // finiteness is checked from the epoch's sums instead.
  bool needs_step_losses() const;
  // Statistics stay on the device (GPU, and a balancer that needs no Gram matrix or losses on
  // the host): what a step needs to be captured in a CUDA graph.
  bool statistics_on_device() const;
  // A step replayed from a CUDA graph: the host's counts of a combine (steps, weights).
  void count_replayed_step(uint64_t step, int64_t batch);

  // The balancer's per-step arithmetic runs on the device (GPU, a ProgramBalancer other than
  // static). Then the network calls launch_device_seeds before the heads' backward and seeds
  // task t's loss backward from device_seed(t).
  bool balances_on_device() const;
  // The tasks' f32 loss scalars on the device (the network's, fixed for its life).
  void set_device_losses(std::vector<const float*> losses);
  // device_step, when set, holds the step number (CUDA graphs freeze kernel arguments).
  void launch_device_seeds(uint64_t step, const uint64_t* device_step);
  const float* device_seed(size_t t) const;
  // Brings the host's copy of the balancer's state up to date with the device's (a read back
  // when device steps ran since the last one). Call before reading balancer().state().
  void sync_balancer_state() const;

  // The epoch's mean diagnostics, and a fresh start for the next epoch.
  BalanceDiagnostics take_diagnostics();
  // Lets the balancer adapt to the finished epoch (dynamic weights, DWA).
  void end_epoch(const EpochSummary& summary);

 private:
  void reset_diagnostics();
  [[noreturn]] void fail_nonfinite_gradient(size_t task, const std::string& when) const;
  void prepare_device_balancing();
  void upload_balancer_state();

  // The per-task Gram matrix at z of this step (host or device), summed over the ranks.
  void sum_gram_over_ranks();
  void gram_on_device_and_statistics();

  std::vector<std::string> names_;
  std::string representation_;
  Communicator* comm_ = nullptr;
  std::vector<Tensor> task_grads_, task_views_;
  std::unique_ptr<Balancer> balancer_;
  std::vector<double> configured_;  // the tasks' loss weights: what a balancer starts from
  std::vector<double> losses_, seeds_, gram_;
  uint64_t step_ = 0;
  int64_t batch_ = 0;
  int64_t backwards_ = 0;  // combines done: the balancer is fixed after the first
  BalanceDiagnostics sums_;              // steps and weights; the rest comes from gram_sums_
  std::vector<double> gram_sums_;        // kernels::GramStatisticsLayout, host steps
  Tensor device_gram_, device_gram_sums_;  // the same on the device (GPU steps)
  // Device balancing (balances_on_device): the strategy's state, its seeds (f32 for the loss
  // kernels, f64 for combine), the combine's coefficients, and the epoch's weight sums.
  Tensor device_state_, device_seeds32_, device_seeds64_, device_coefficients_,
      device_weight_sums_;
  std::vector<const float*> device_losses_;
  uint64_t uploaded_version_ = 0;
  const uint64_t* device_step_ = nullptr;  // of the last device seeds launch
  mutable bool device_ahead_ = false;  // device steps ran since the host's state was brought up to date
};

}  // namespace polytask
