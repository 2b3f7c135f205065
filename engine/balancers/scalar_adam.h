// Adam for the handful of parameters a balancer learns itself (uncertainty's log-variances,
// GradNorm's weights), in double on the host: T numbers per step, no device work.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace polytask::balancing {

struct ScalarAdam {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::vector<double> m, v;
  int64_t steps = 0;  // updates taken

  void resize(size_t n) { m.assign(n, 0.0), v.assign(n, 0.0), steps = 0; }
  // x -= lr · m̂ / (sqrt(v̂) + eps), PyTorch's formula. A gradient too large to square in
  // double (|g| > 1e150) is clipped so the moments stay finite.
  void step(std::span<double> x, std::span<const double> grad) {
    ++steps;
    const double c1 = 1 - std::pow(beta1, double(steps)), c2 = 1 - std::pow(beta2, double(steps));
    for (size_t i = 0; i < x.size(); ++i) {
      const double g = std::fmax(-1e150, std::fmin(1e150, grad[i]));
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      x[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
    }
  }
};

}  // namespace polytask::balancing
