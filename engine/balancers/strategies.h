// One constructor per strategy file; make_balancer (factory.cpp) picks among them. Options are
// validated by the factory before these run.
#pragma once

#include <memory>
#include <span>

#include "engine/balancer.h"

namespace polytask::balancing {

std::unique_ptr<Balancer> make_static_weights(const BalancerOptions& options);
std::unique_ptr<Balancer> make_dynamic_weights(const BalancerOptions& options);
std::unique_ptr<Balancer> make_uncertainty(const BalancerOptions& options);
std::unique_ptr<Balancer> make_gradnorm(const BalancerOptions& options);
std::unique_ptr<Balancer> make_dwa(const BalancerOptions& options);
std::unique_ptr<Balancer> make_pcgrad(const BalancerOptions& options);
std::unique_ptr<Balancer> make_mgda(const BalancerOptions& options);

// MGDA's solver: the min-norm point α (on the simplex) of the convex hull of T vectors given by
// their Gram matrix (T×T, row-major). Exact for T <= 2, Frank-Wolfe otherwise.
void mgda_min_norm(std::span<const double> gram, size_t tasks, std::span<double> alpha);

// The learning rate the uncertainty and GradNorm strategies train with (options.lr, or 1e-3).
double balancer_learning_rate(const BalancerOptions& options);

}  // namespace polytask::balancing
