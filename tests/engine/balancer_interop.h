// What the balancer interop tests share: running tests/engine/balancer_interop.py (TorchJD's
// aggregators on random Jacobians) and putting the same Jacobians through our
// kernels::balance::combine, so both sides can be compared as the vectors the rows combine into.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/balance.h"
#include "kernels/error.h"
#include "tests/support/python.h"

namespace polytask::testing {

// One Jacobian (T rows of DIM numbers: the task gradients) and TorchJD's aggregation of it.
struct InteropCase {
  std::vector<std::vector<double>> jacobian;
  std::vector<double> expected;
};

// A Python that imports TorchJD and torch ("" when none does: the tests skip).
inline const std::string& python_with_torchjd() {
  static const std::string found = python_that_imports("torchjd, torch");
  return found;
}

// Not through __FILE__: ccache's base_dir may make it relative (tests/CMakeLists.txt).
inline std::string balancer_interop_script() {
  return std::string(POLYTASK_SOURCE_DIR) + "/tests/engine/balancer_interop.py";
}

// The cases balancer_interop.py prints for `expression` (a failure is recorded and the list is
// empty when the script fails or prints no JSON).
inline std::vector<InteropCase> torchjd_cases(const std::string& expression, int tasks, int dim,
                                              int count, int seed) {
  const auto [status, out] =
      run_command(cat(python_with_torchjd(), " '", balancer_interop_script(), "' '", expression,
                      "' ", tasks, " ", dim, " ", count, " ", seed));
  EXPECT_EQ(status, 0) << out;
  // The JSON line (the script's notes and the libraries' warnings arrive on stderr, merged).
  const size_t begin = out.rfind("{\"cases\"");
  if (status != 0 || begin == std::string::npos) {
    ADD_FAILURE() << "no JSON from balancer_interop.py:\n" << out;
    return {};
  }
  std::vector<InteropCase> cases;
  try {
    const nlohmann::json json = nlohmann::json::parse(out.substr(begin, out.find('\n', begin)));
    for (const auto& c : json.at("cases"))
      cases.push_back({c.at("J").get<std::vector<std::vector<double>>>(),
                       c.at("expected").get<std::vector<double>>()});
  } catch (const std::exception& e) {
    ADD_FAILURE() << "bad JSON from balancer_interop.py: " << e.what() << "\n" << out;
  }
  return cases;
}

// Σ_t c_t·J_t with c from kernels::balance::combine on J's Gram matrix, every configured weight
// 1 (so the seeds are 1 and the rows are the task gradients as TorchJD sees them). `settings`
// gives the strategy and its options; tasks and configured weights are set here.
inline std::vector<double> our_aggregation(kernels::balance::Settings settings,
                                           const std::vector<std::vector<double>>& jacobian,
                                           uint64_t step = 0) {
  namespace kb = kernels::balance;
  const int tasks = int(jacobian.size());
  const size_t dim = jacobian.at(0).size();
  settings.tasks = tasks;
  kb::State state;
  double gram[kb::kMaxTasks * kb::kMaxTasks] = {}, losses[kb::kMaxTasks] = {},
         seeds[kb::kMaxTasks] = {};
  for (int t = 0; t < tasks; ++t) {
    settings.configured[t] = state.base[t] = state.weights[t] = 1;
    losses[t] = 1;
  }
  kb::seeds(settings, state, losses, step, seeds);
  for (int i = 0; i < tasks; ++i)
    for (int j = 0; j < tasks; ++j) {
      double sum = 0;
      for (size_t k = 0; k < dim; ++k) sum += jacobian[size_t(i)][k] * jacobian[size_t(j)][k];
      gram[i * tasks + j] = sum;
    }
  double c[kb::kMaxTasks] = {};
  kb::combine(settings, state, gram, losses, seeds, step, c);
  std::vector<double> out(dim, 0.0);
  for (int t = 0; t < tasks; ++t)
    for (size_t k = 0; k < dim; ++k) out[k] += c[t] * seeds[t] * jacobian[size_t(t)][k];
  return out;
}

// ‖ours − theirs‖ relative to the larger of ‖theirs‖ and the largest row norm: rounding in
// either solver is relative to the rows it combines, and when they cancel (opposite gradients)
// the result may be far smaller than they are.
inline double aggregation_error(const std::vector<double>& ours, const std::vector<double>& theirs,
                                const std::vector<std::vector<double>>& jacobian) {
  double diff = 0, norm = 0, scale = 0;
  for (size_t k = 0; k < theirs.size(); ++k) {
    diff += (ours[k] - theirs[k]) * (ours[k] - theirs[k]);
    norm += theirs[k] * theirs[k];
  }
  for (const auto& row : jacobian) {
    double r = 0;
    for (double x : row) r += x * x;
    scale = r > scale ? r : scale;
  }
  const double denominator = std::sqrt(norm > scale ? norm : scale);
  return denominator > 0 ? std::sqrt(diff) / denominator : std::sqrt(diff);
}

}  // namespace polytask::testing
