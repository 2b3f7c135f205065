#include "engine/balancers/program.h"

#include <algorithm>
#include <cmath>

#include "engine/balancers/grad_ops.h"
#include "kernels/error.h"

namespace polytask::balancing {

void check_count(const std::string& balancer, const char* what, double count) {
  if (!(count >= 0 && count == std::floor(count)))
    fail("balancer '", balancer, "': invalid ", what, " ", count, " in the checkpoint");
}

void ProgramBalancer::on_bind() {
  if (tasks_.size() > size_t(kb::kMaxTasks))
    fail("balancer '", name(), "': ", tasks_.size(), " tasks; a balanced fan-out takes at most ",
         kb::kMaxTasks);
  settings_.tasks = int32_t(tasks_.size());
  st_ = kb::State{};
  for (size_t t = 0; t < tasks_.size(); ++t) {
    settings_.configured[t] = initial_[t];
    st_.base[t] = st_.weights[t] = initial_[t];
  }
  init_state();
  std::copy(st_.weights, st_.weights + tasks_.size(), weights_.begin());
  state_changed();
}

void ProgramBalancer::state_changed() { ++version_; }

void ProgramBalancer::weight_changed(size_t t) {
  st_.base[t] = weights_[t];
  state_changed();
}

void ProgramBalancer::take_device_state(const kb::State& state) {
  st_ = state;
  std::copy(st_.weights, st_.weights + tasks_.size(), weights_.begin());
}

void ProgramBalancer::loss_seeds(uint64_t step, std::span<const double> losses,
                                 std::span<double> seeds) {
  kb::seeds(settings_, st_, losses.data(), step, seeds.data());
}

void ProgramBalancer::combine(const TaskGradients& g, const Tensor& dz) {
  const size_t tasks = tasks_.size();
  double coefficients[kb::kMaxTasks];
  kb::combine(settings_, st_, g.gram.data(), g.losses.data(), g.seeds.data(), g.step, coefficients);
  std::copy(st_.weights, st_.weights + tasks, weights_.begin());
  if (!dz.defined()) return;
  // Coefficients of exactly 1 sum with the fan-out's kernel: bit-identical to the plain sum.
  if (std::all_of(coefficients, coefficients + tasks, [](double c) { return c == 1.0; }))
    plain_sum(g.grads, dz);
  else
    weighted_sum(std::span<const double>(coefficients, tasks), g.grads, dz);
}

std::vector<ProgramBalancer::Field> ProgramBalancer::learned(const char* name) {
  return {{name, &kb::State::param},
          {"adam_m", &kb::State::adam_m},
          {"adam_v", &kb::State::adam_v},
          {"adam_steps", nullptr, &kb::State::adam_steps}};
}

NamedTensors ProgramBalancer::state() const {
  NamedTensors out;
  const std::string prefix = "balancer." + name() + ".";
  for (const Field& f : fields()) {
    std::vector<double> values;
    if (f.array)
      values.assign(st_.*f.array, st_.*f.array + tasks_.size());
    else
      values.push_back(st_.*f.scalar);
    out.emplace_back(prefix + f.name, vector_tensor(values));
  }
  return out;
}

void ProgramBalancer::load_state(const NamedTensors& state) {
  if (fields().empty()) return Balancer::load_state(state);
  const std::string prefix = "balancer." + name() + ".";
  std::vector<std::string> keys;
  for (const Field& f : fields()) keys.push_back(prefix + f.name);
  expect_only(state, keys);
  kb::State loaded = st_;
  bool has_weights = false;
  for (const Field& f : fields()) {
    const auto values = read_vector(state, prefix + f.name, f.array ? tasks_.size() : 1);
    if (f.array)
      std::copy(values.begin(), values.end(), loaded.*f.array);
    else
      loaded.*f.scalar = values[0];
    has_weights |= f.array == &kb::State::weights;
    if (f.scalar == &kb::State::adam_steps) check_count(name(), "step count", loaded.adam_steps);
  }
  // What the next step uses, unless the checkpoint says what the last one used.
  if (!has_weights) std::copy(loaded.base, loaded.base + tasks_.size(), loaded.weights);
  check_loaded(loaded);
  take_device_state(loaded);
  state_changed();
}

}  // namespace polytask::balancing
