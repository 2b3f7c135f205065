// Optimisers over a network's flat parameter and gradient buffers: one kernel call per step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/network.h"
#include "kernels/optimizer.h"

namespace polytask {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Applies one update from parameters().grads to parameters().values. The state is allocated
  // on the first step (same dtype and device as the parameters) and reused afterwards.
  virtual void step(ParameterSet& params) = 0;
  virtual double learning_rate() const = 0;
  virtual void set_learning_rate(double lr) = 0;
  virtual std::string name() const = 0;
  // Named state tensors (moments, step count) for checkpoints.
  virtual std::vector<std::pair<std::string, Tensor>> state() = 0;
};

// Adam with bias correction; defaults lr 1e-3, betas 0.9/0.999 and Keras' eps 1e-7.
class Adam final : public Optimizer {
 public:
  explicit Adam(kernels::AdamParams params = {});
  void step(ParameterSet& params) override;
  double learning_rate() const override { return params_.lr; }
  void set_learning_rate(double lr) override;
  std::string name() const override { return "adam"; }
  std::vector<std::pair<std::string, Tensor>> state() override;
  int64_t steps_taken() const { return params_.step - 1; }

 private:
  kernels::AdamParams params_;
  Tensor m_, v_, step_;  // step_: (1,) f64 copy of the step count, for checkpoints
};

// SGD with optional (Nesterov) momentum and L2 weight decay, torch.optim.SGD semantics.
class Sgd final : public Optimizer {
 public:
  explicit Sgd(kernels::SgdParams params = {});
  void step(ParameterSet& params) override;
  double learning_rate() const override { return params_.lr; }
  void set_learning_rate(double lr) override;
  std::string name() const override { return "sgd"; }
  std::vector<std::pair<std::string, Tensor>> state() override;

 private:
  kernels::SgdParams params_;
  Tensor velocity_;
};

}  // namespace polytask
