// Gradient balancing at the fan-out: how the tasks' losses are weighted and how their gradients
// with respect to the shared representation z are combined into dz.
//
// One backward step, as the FanOut drives a Balancer:
//   loss_seeds(step, L, seeds)  before the heads run backward: task t's loss backward is seeded
//                               with seeds[t], so head t's parameters get seeds[t]·∂L_t/∂θ_t and
//                               the fan-out receives g_t = seeds[t]·∂L_t/∂z;
//   combine(g, dz)              dz from the per-task gradients g_t (default: Σ_t g_t);
//   end_epoch(summary)          once per epoch, with the epoch's mean task losses.
// weights() is what each task counted for in the last step (the console and metrics log their
// mean over an epoch); state()/load_state() carry what a strategy learned across a checkpoint.
//
// The strategies (engine/balancers/, one file each; user guide: docs/balancers.md):
//   static       fixed loss weights, Keras' loss_weights (the default)
//   dynamic      a per-epoch schedule, or a rule that moves weight to the task that lags
//   uncertainty  learned log-variances (Kendall, Gal & Cipolla 2018)
//   gradnorm     weights trained to balance the gradient norms at z (Chen et al. 2018)
//   dwa          dynamic weight average (Liu, Johns & Davison 2019)
//   pcgrad       projects conflicting task gradients (Yu et al. 2020)
//   mgda         the min-norm point of the task gradients, MGDA-UB (Sener & Koltun 2018)
//   upgrad       each gradient projected onto the dual cone, averaged (Quinton & Rey 2024)
//   famo         fast adaptive multitask optimisation, O(1) per step (Liu et al. 2023)
//   cagrad       conflict-averse gradient descent (Liu et al. 2021)
//   nash-mtl     the Nash bargaining solution of the task gradients (Navon et al. 2022)
//   imtl         impartial MTL, gradient and loss balance (Liu et al. 2021)
//   aligned-mtl  the task gradients' principal components, aligned (Senushkin et al. 2023)
//   rlw          random loss weights (Lin et al. 2022)
//   static-from-norms  static, with weights set from the first epoch's gradient norms
// Each one's per-step arithmetic is kernels/balance/<name>.h, the same code on the host and the
// device.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace polytask {

// Every strategy's options in one place (each strategy reads its own), so a config table, the
// command line and a run's saved settings map onto one struct.
struct BalancerOptions {
  std::string name = "static";
  // uncertainty, gradnorm: the learning rate of the Adam step that trains their parameters.
  // 0: 1e-3 (Adam's default; the CLI passes the network's --lr instead).
  double lr = 0;
  double alpha = 1.5;        // gradnorm: the restoring-force exponent α
  double temperature = 2.0;  // dwa: the softmax temperature τ
  double step = 0.1;         // dynamic: the weight moved per epoch by the adaptive rule
  // dynamic: weights per epoch by task (epoch e uses entry e-1, the last one after the end).
  // Non-empty: the weights follow it and the adaptive rule is off.
  std::map<std::string, std::vector<double>> schedule;
  std::string normalization = "none";  // mgda: none | l2 | loss | loss+
  uint64_t seed = 0;  // pcgrad, rlw: the random task order / weights derive from (seed, step)
  double c = 0.4;     // cagrad: the radius of the ball around the mean gradient
  double decay = 1e-3;               // famo: the weight decay γ of its logits
  std::string imtl_mode = "hybrid";  // imtl: hybrid | gradient | loss
  std::string scale = "min";         // aligned-mtl: min | median | rmse
};

// The strategies make_balancer knows, in the order the CLI lists them.
const std::vector<std::string>& balancer_names();
// Throws a one-line Error listing the known strategies for an unknown name, or naming the
// option for an invalid value (alpha < 0, temperature <= 0, ...).
class Balancer;
std::unique_ptr<Balancer> make_balancer(const BalancerOptions& options);

// What the FanOut tells a balancer once, before the first step.
struct BalancerBinding {
  std::vector<std::string> tasks;
  std::vector<double> weights;  // the tasks' configured loss weights
  Shape grad_shape;             // (max_batch, *z): the capacity of the per-task gradients
  DType dtype = DType::F32;
  Device device = Device::CPU;
};

// The per-task gradients of one step, as combine() receives them.
struct TaskGradients {
  std::span<const Tensor> grads;   // (batch, *z) each: g_t = seeds[t]·∂L_t/∂z
  std::span<const double> gram;    // T×T row-major: <g_i, g_j> over the whole batch
  std::span<const double> losses;  // L_t of this batch (finite)
  std::span<const double> seeds;   // what the losses were seeded with
  uint64_t step = 0;               // Network::step() of this backward
};

// An epoch's mean task losses, for strategies that adapt once per epoch.
struct EpochSummary {
  int epoch = 0;  // 1-based, the epoch just finished
  std::vector<double> train_loss;
  std::vector<double> validation_loss;  // empty without a validation split
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Balancer {
 public:
  virtual ~Balancer() = default;
  virtual std::string name() const = 0;
  // "gradnorm (alpha 1.5, lr 0.001)": the name and the options it uses, for logs.
  virtual std::string describe() const { return name(); }

  // Fixes the tasks and their configured weights (the starting point; see docs/balancers.md).
  // Throws when the weights or options do not suit the strategy.
  void bind(const BalancerBinding& binding);
  bool bound() const { return !tasks_.empty(); }
  size_t task_count() const { return tasks_.size(); }

  // seeds[t] for task t's loss backward, from the batch's (finite) task losses.
  virtual void loss_seeds(uint64_t step, std::span<const double> losses,
                          std::span<double> seeds) = 0;
  // Writes dz (batch, *z) from the per-task gradients; the default sums them in task order
  // (bit-identical to the plain weighted sum). `dz` may be undefined (z is a model input): a
  // strategy then only updates its own state.
  virtual void combine(const TaskGradients& g, const Tensor& dz);
  virtual void end_epoch(const EpochSummary& /*summary*/) {}
  // What a step must hand the strategy on the host: the batch's losses (loss_seeds' argument)
  // and the Gram matrix (TaskGradients::gram). On the GPU each costs a device-to-host round
  // trip per step, so strategies that read neither say so.
  virtual bool needs_step_losses() const { return true; }
  virtual bool needs_gram() const { return true; }

  // The weight each task counted for in the last step (before any step: the starting weights).
  std::span<const double> weights() const { return weights_; }
  // Static, PCGrad, UPGrad and Aligned-MTL seed with the configured weights as they are:
  // set_weight changes them for the next step. The adaptive strategies set their own and
  // refuse it.
  virtual bool accepts_set_weight() const { return false; }
  void set_weight(size_t t, double weight);

  // What the strategy learned (parameters, optimiser moments, loss history), as CPU F64
  // tensors named "balancer.<name>.<what>", for checkpoints. load_state validates everything
  // before it changes anything.
  virtual NamedTensors state() const { return {}; }
  virtual void load_state(const NamedTensors& state);

 protected:
  virtual void on_bind() {}
  // After set_weight changed weights_[t].
  virtual void weight_changed(size_t /*t*/) {}
  // Throws naming the strategy and the task unless every configured weight is positive.
  void require_positive_weights() const;
  // A named F64 tensor of `values`, and its inverse with size checks.
  Tensor vector_tensor(const std::vector<double>& values) const;
  std::vector<double> read_vector(const NamedTensors& state, const std::string& key,
                                  size_t size) const;
  // Throws naming the first entry of `state` that is not one of `keys`.
  void expect_only(const NamedTensors& state, const std::vector<std::string>& keys) const;

  std::vector<std::string> tasks_;
  std::vector<double> initial_;  // configured weights
  std::vector<double> weights_;  // current weights
  BalancerBinding binding_;
};

// Weights the adaptive strategies never leave, so a weight is always finite and positive even
// under extreme losses (1e30, 1e-30).
inline constexpr double kMinBalancedWeight = 1e-6;
inline constexpr double kMaxBalancedWeight = 1e6;
double clamp_weight(double w);  // NaN -> kMinBalancedWeight

}  // namespace polytask
