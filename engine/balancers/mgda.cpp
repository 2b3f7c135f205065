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
#include <algorithm>
#include <cmath>

#include "engine/balancers/grad_ops.h"
#include "engine/balancers/strategies.h"

namespace polytask::balancing {

namespace {

// The γ in [0, 1] minimising ‖(1−γ)·u + γ·v‖² from <u,u>, <u,v>, <v,v>.
double line_min(double uu, double uv, double vv) {
  const double denominator = uu + vv - 2 * uv;
  if (!(denominator > 0)) return uu <= vv ? 0.0 : 1.0;
  return std::clamp((uu - uv) / denominator, 0.0, 1.0);
}

class Mgda final : public Balancer {
 public:
  explicit Mgda(std::string normalization) : normalization_(std::move(normalization)) {}
  std::string name() const override { return "mgda"; }
  std::string describe() const override { return cat("mgda (normalization ", normalization_, ")"); }

  void loss_seeds(uint64_t, std::span<const double>, std::span<double> seeds) override {
    std::fill(seeds.begin(), seeds.end(), 1.0);
  }

  void combine(const TaskGradients& g, const Tensor& dz) override {
    const size_t tasks = g.grads.size();
    for (size_t t = 0; t < tasks; ++t) {
      const double norm = std::sqrt(g.gram[t * tasks + t]);
      double n = 1;
      if (normalization_ == "l2")
        n = norm;
      else if (normalization_ == "loss")
        n = g.losses[t];
      else if (normalization_ == "loss+")
        n = g.losses[t] * norm;
      scale_[t] = n > 0 && std::isfinite(n) ? 1 / n : 1.0;
    }
    for (size_t i = 0; i < tasks; ++i)
      for (size_t j = 0; j < tasks; ++j)
        gram_[i * tasks + j] = g.gram[i * tasks + j] * scale_[i] * scale_[j];
    min_norm_point(gram_, tasks, weights_);
    if (dz.defined()) weighted_sum(weights_, g.grads, dz);
  }

  // The min-norm point of the convex hull of vectors with Gram matrix `gram` (T×T): α on the
  // simplex. Exposed for the tests through mgda_min_norm().
  static void min_norm_point(std::span<const double> gram, size_t tasks, std::span<double> alpha) {
    std::fill(alpha.begin(), alpha.end(), 0.0);
    if (tasks == 1) {
      alpha[0] = 1;
      return;
    }
    const auto M = [&](size_t i, size_t j) { return gram[i * tasks + j]; };
    // Start from the best pair's exact solution (as the paper's solver does).
    double best = INFINITY;
    size_t bi = 0, bj = 1;
    double bg = 0;
    for (size_t i = 0; i < tasks; ++i)
      for (size_t j = i + 1; j < tasks; ++j) {
        const double gamma = line_min(M(i, i), M(i, j), M(j, j));  // weight on j
        const double value = (1 - gamma) * (1 - gamma) * M(i, i) +
                             2 * gamma * (1 - gamma) * M(i, j) + gamma * gamma * M(j, j);
        if (value < best) best = value, bi = i, bj = j, bg = gamma;
      }
    alpha[bi] = 1 - bg;
    alpha[bj] = bg;
    if (tasks == 2) return;
    // Frank-Wolfe: move toward the vertex with the smallest <e_t, v>, exact line search.
    for (int iteration = 0; iteration < 250; ++iteration) {
      double vv = 0;
      size_t vertex = 0;
      double smallest = INFINITY;
      for (size_t t = 0; t < tasks; ++t) {
        double mt = 0;  // (Mα)_t = <g_t, v>
        for (size_t s = 0; s < tasks; ++s) mt += M(t, s) * alpha[s];
        vv += alpha[t] * mt;
        if (mt < smallest) smallest = mt, vertex = t;
      }
      const double gamma = line_min(vv, smallest, M(vertex, vertex));
      if (gamma * std::fabs(1 - alpha[vertex]) < 1e-10) break;
      for (size_t t = 0; t < tasks; ++t) alpha[t] *= 1 - gamma;
      alpha[vertex] += gamma;
    }
  }

 protected:
  void on_bind() override {
    const size_t tasks = tasks_.size();
    gram_.assign(tasks * tasks, 0.0);
    scale_.assign(tasks, 1.0);
    weights_.assign(tasks, 1.0 / double(tasks));  // what a step would use with equal gradients
  }

 private:
  std::string normalization_;
  std::vector<double> gram_, scale_;
};

}  // namespace

std::unique_ptr<Balancer> make_mgda(const BalancerOptions& options) {
  return std::make_unique<Mgda>(options.normalization);
}

void mgda_min_norm(std::span<const double> gram, size_t tasks, std::span<double> alpha) {
  Mgda::min_norm_point(gram, tasks, alpha);
}

}  // namespace polytask::balancing
