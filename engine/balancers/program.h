// A strategy whose per-step arithmetic is kernels/balance.h's seeds() and combine(): every
// built-in one but static (whose seeds the host knows). The same functions run here on the host state and, for a GPU run, in one-thread
// kernels on a device copy of it (engine/fan_out.cpp), which is what lets every strategy replay
// inside a step's CUDA graph. This class adds what only the host does: binding, the state a
// checkpoint keeps (named fields of kernels::balance::State), and the version counter that
// tells the fan-out when the host changed the state (bind, load_state, end_epoch, set_weight)
// and the device copy must be replaced.
#pragma once

#include <vector>

#include "engine/balancer.h"
#include "kernels/balance.h"

namespace polytask::balancing {

namespace kb = kernels::balance;

class ProgramBalancer : public Balancer {
 public:
  void loss_seeds(uint64_t step, std::span<const double> losses, std::span<double> seeds) override;
  void combine(const TaskGradients& g, const Tensor& dz) override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;

  const kb::Settings& settings() const { return settings_; }
  const kb::State& program_state() const { return st_; }
  // The device finished steps the host did not run: its state replaces the host's (weights()
  // included). Does not bump the version.
  void take_device_state(const kb::State& state);
  uint64_t state_version() const { return version_; }

 protected:
  explicit ProgramBalancer(kb::Strategy strategy) { settings_.strategy = strategy; }
  // Options into settings_ (the factory validated them).
  kb::Settings settings_;
  kb::State st_;

  // A checkpointed part of the state: one of its per-task arrays or one of its scalars.
  struct Field {
    const char* name;
    double (kb::State::*array)[kb::kMaxTasks] = nullptr;
    double kb::State::*scalar = nullptr;
  };
  virtual std::vector<Field> fields() const { return {}; }
  // A learned per-task number in st_.param, under `name`, and the Adam moments that train it
  // (their step count is checked on load).
  static std::vector<Field> learned(const char* name);
  // Throws naming what is wrong with a checkpoint's state (every field already finite).
  virtual void check_loaded(const kb::State& /*state*/) const {}
  // The starting state, once the tasks are known (st_.base = the configured weights before).
  virtual void init_state() {}
  // After the host changed st_: the device copy is stale.
  void state_changed();
  void weight_changed(size_t t) override;

 private:
  void on_bind() final;
  uint64_t version_ = 0;
};

// Throws unless `count` (a checkpointed counter) is a non-negative whole number.
void check_count(const std::string& balancer, const char* what, double count);

}  // namespace polytask::balancing
