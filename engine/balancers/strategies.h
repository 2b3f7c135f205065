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
std::unique_ptr<Balancer> make_upgrad(const BalancerOptions& options);
std::unique_ptr<Balancer> make_famo(const BalancerOptions& options);
std::unique_ptr<Balancer> make_cagrad(const BalancerOptions& options);
std::unique_ptr<Balancer> make_nash_mtl(const BalancerOptions& options);
std::unique_ptr<Balancer> make_imtl(const BalancerOptions& options);
std::unique_ptr<Balancer> make_aligned_mtl(const BalancerOptions& options);
std::unique_ptr<Balancer> make_rlw(const BalancerOptions& options);
std::unique_ptr<Balancer> make_static_from_norms(const BalancerOptions& options);

// MGDA's solver: the min-norm point α (on the simplex) of the convex hull of T vectors given by
// their Gram matrix (T×T, row-major). Exact for T <= 2, Frank-Wolfe otherwise.
void mgda_min_norm(std::span<const double> gram, size_t tasks, std::span<double> alpha);

// The learning rate a strategy trains its own parameters with: options.lr, or its default
// (1e-3, Adam's, for uncertainty, GradNorm and IMTL; FAMO's authors use 0.025).
double balancer_learning_rate(const BalancerOptions& options, double fallback = 1e-3);

}  // namespace polytask::balancing
