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
  // Named state tensors (moments, step count) for checkpoints. Tensors not allocated yet (no
  // step taken) are returned undefined.
  virtual std::vector<std::pair<std::string, Tensor>> state() = 0;
  // Restores tensors that state() returned (from a checkpoint: CPU tensors, F32 or F64, which
  // are converted to the dtype and device of `params`). A per-parameter tensor absent from
  // `state` (saved before the first step) is left unallocated. Throws naming the tensor when a
  // name is unknown or a size does not fit `params`; the optimiser is unchanged after a throw.
  // The default restores nothing and accepts only an empty `state` (a stateless optimiser).
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state,
                          const ParameterSet& params);

  // For CUDA graphs, which freeze kernel arguments at capture: step() split in two. stage()
  // does the host's part of the next step (the step count) and copies that step's constants
  // (learning rate, bias corrections) to device memory through the pinned staging ring
  // (engine/host_staging.h), without waiting; step_staged() queues
  // the update reading them there — what a captured training step contains. Together they are
  // step(), bit for bit. CUDA parameters only; the default throws.
  virtual void stage(ParameterSet& params);
  virtual void step_staged(ParameterSet& params);
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
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state,
                  const ParameterSet& params) override;
  int64_t steps_taken() const { return params_.step - 1; }
  void stage(ParameterSet& params) override;
  void step_staged(ParameterSet& params) override;

 private:
  kernels::AdamParams params_;
  Tensor m_, v_, step_;  // step_: (1,) f64 copy of the step count, for checkpoints
  Tensor staged_;        // the staged step's kernels::cuda::AdamStepConstants, on the device
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
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state,
                  const ParameterSet& params) override;
  void stage(ParameterSet& params) override;
  void step_staged(ParameterSet& params) override;

 private:
  kernels::SgdParams params_;
  Tensor velocity_;
  Tensor staged_;  // kernels::cuda::SgdStepConstants, on the device
};

}  // namespace polytask
