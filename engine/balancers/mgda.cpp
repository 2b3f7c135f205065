// MGDA-UB (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization"): the
// trunk descends along the min-norm point of the convex hull of the task gradients, taken
// with respect to the shared representation z (the paper's upper bound: no extra trunk
// backward per task).
//
// Seeds are 1, so g_t = ∂L_t/∂z and each head trains on its own raw loss (the paper's update
// of task-specific parameters). With normalisers n_t (none: 1; l2: ‖g_t‖; loss: L_t; loss+:
// L_t·‖g_t‖, the options of the paper's code and LibMTL's mgda_gn), α solves
//   min_α ‖Σ_t α_t g_t / n_t‖²   over the simplex (α_t ≥ 0, Σ α_t = 1),
// exactly for two tasks (α_1 = clamp(<ĝ_2 − ĝ_1, ĝ_2> / ‖ĝ_1 − ĝ_2‖², 0, 1)), by Frank-Wolfe
// with exact line search for more (on the T×T Gram matrix: cheap). As the paper's code does,
// α then scales the raw gradients: dz = Σ_t α_t g_t. Σα = 1, so dz is a convex combination and
// no larger than the largest task gradient; the weights logged are α.
// The solver is kernels/balance/mgda.h.
#include "engine/balancers/program.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

class Mgda final : public ProgramBalancer {
 public:
  explicit Mgda(const std::string& normalization)
      : ProgramBalancer(kb::Strategy::Mgda), normalization_(normalization) {
    const char* names[] = {"none", "l2", "loss", "loss+"};
    for (int32_t i = 0; i < 4; ++i)
      if (normalization == names[i]) settings_.normalization = i;
  }
  std::string name() const override { return "mgda"; }
  std::string describe() const override { return cat("mgda (normalization ", normalization_, ")"); }

 protected:
  void init_state() override {
    // What a step would use with equal gradients.
    for (size_t t = 0; t < tasks_.size(); ++t) st_.weights[t] = 1.0 / double(tasks_.size());
  }

 private:
  std::string normalization_;
};

}  // namespace

std::unique_ptr<Balancer> make_mgda(const BalancerOptions& options) {
  return std::make_unique<Mgda>(options.normalization);
}

void mgda_min_norm(std::span<const double> gram, size_t tasks, std::span<double> alpha) {
  kb::min_norm_point(gram.data(), int(tasks), alpha.data());
}

}  // namespace polytask::balancing
