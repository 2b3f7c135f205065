// Our balancers' per-step arithmetic (kernels::balance::combine) against TorchJD's aggregators
// (tests/engine/balancer_interop.py) on the same random Jacobians, hard cases included
// (opposite, duplicate and zero gradients). The rows are the task gradients, every configured
// weight is 1, and the two sides are compared as the vectors the rows combine into: Σ c_t·J_t
// against TorchJD's aggregation. Skips where no Python imports torchjd (CI's machines).
//
// Tolerances (aggregation_error: relative to the larger of the result and the largest row):
//   1e-9 where both sides solve the same problem exactly up to rounding (UPGrad's QP, solved
//     by quadprog there and an active set here; Aligned-MTL's eigendecomposition; two-task
//     MGDA's closed form; PCGrad's projections). The Gram matrices differ in summation order
//     (~1e-16 relative); the regularised UPGrad QP is conditioned at most ~1e4 and the random
//     Gram matrices here at most ~1e4 too, so the results agree to ~1e-12: 1e-9 leaves room
//     for unlucky draws while any formula difference (a scale, a missing normalisation, the
//     wrong median) shows as an error of 1e-3 or more.
//   MGDA with three tasks: 1e-2. TorchJD's Frank-Wolfe starts from the uniform point and stops
//     when its step γ drops below epsilon (default 1e-3: up to 2% off the minimum on these
//     cases). Asked for epsilon 1e-6 it agrees with ours to ~1e-4 on the random cases, but on
//     the opposite-gradients case (minimum 0, which ours, starting from the best pair, hits
//     exactly) it creeps in at O(1/k) and is still 7e-3 away after its 1000 iterations (2e-3
//     after 10000; both checked against quadprog on the simplex). So the row confirms that
//     TorchJD's MGDA() is our normalization "none" (same problem, weights on the raw
//     gradients), not the last digits.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>

#include "tests/engine/balancer_interop.h"

namespace polytask {
namespace {

namespace kb = kernels::balance;
using S = kb::Strategy;
using testing::InteropCase;

// One comparison: our settings (tasks and weights are filled in), TorchJD's aggregator, the
// number of tasks, the tolerance, and the gradients' length.
struct Row {
  kb::Settings settings;
  const char* torchjd;
  int tasks;
  double tolerance;
  int dim = 16;
  // Ours times this against TorchJD's (TorchJD's CAGrad leaves out the authors' 1/(1+c²)).
  double our_scale = 1;
  // Only the random cases: on the three hard ones (opposite, duplicate, zero rows) the row's
  // methods are undefined or degenerate and the two sides choose differently (documented in
  // our headers).
  bool random_only = false;
  // Nash-MTL: skip the cases where TorchJD's solve failed. Its CVXPY/ECOS solve fails on some
  // random cases and it then returns its previous α (ones at first), which violates the
  // condition α_t·(Gα)_t = 1 that defines the method; such a case checks nothing of ours.
  bool skip_failed_nash = false;
};

// Rows: one line each. PCGrad's task order is random on both sides: only two tasks compare.
const Row kRows[] = {
    {{.strategy = S::UpGrad}, "UPGrad()", 2, 1e-9},
    {{.strategy = S::UpGrad}, "UPGrad()", 3, 1e-9},
    {{.strategy = S::UpGrad}, "UPGrad()", 5, 1e-9},
    {{.strategy = S::UpGrad}, "UPGrad()", 5, 1e-9, 3},  // rank 3: a singular Gram matrix
    {{.strategy = S::AlignedMtl, .mode = 0}, "AlignedMTL(scale_mode=\"min\")", 2, 1e-9},
    {{.strategy = S::AlignedMtl, .mode = 0}, "AlignedMTL(scale_mode=\"min\")", 3, 1e-9},
    {{.strategy = S::AlignedMtl, .mode = 1}, "AlignedMTL(scale_mode=\"median\")", 4, 1e-9},
    {{.strategy = S::AlignedMtl, .mode = 2}, "AlignedMTL(scale_mode=\"rmse\")", 5, 1e-9, 3},
    {{.strategy = S::Mgda, .normalization = 0}, "MGDA()", 2, 1e-9},
    {{.strategy = S::Mgda, .normalization = 0}, "MGDA(epsilon=1e-6, max_iters=1000)", 3, 1e-2},
    {{.strategy = S::PcGrad}, "PCGrad()", 2, 1e-9},
    {{.strategy = S::CaGrad, .c = 0.4}, "CAGrad(c=0.4)", 2, 1e-4, 16, 1.16, true},
    {{.strategy = S::CaGrad, .c = 0.4}, "CAGrad(c=0.4)", 3, 1e-4, 16, 1.16, true},
    {{.strategy = S::CaGrad, .c = 0.4}, "CAGrad(c=0.4)", 4, 1e-4, 16, 1.16, true},
    {{.strategy = S::NashMtl}, "NashMTL(n_tasks=2, max_norm=0.0, optim_niter=40)", 2, 1e-6, 16, 1, true, true},
    {{.strategy = S::NashMtl}, "NashMTL(n_tasks=3, max_norm=0.0, optim_niter=40)", 3, 1e-6, 16, 1, true, true},
    {{.strategy = S::Imtl, .mode = 1}, "IMTLG()", 2, 1e-9, 16, 1, true},
    {{.strategy = S::Imtl, .mode = 1}, "IMTLG()", 3, 1e-9, 16, 1, true},
    {{.strategy = S::Imtl, .mode = 1}, "IMTLG()", 5, 1e-9, 16, 1, true},
};

constexpr int kCases = 20;  // per row: the last three are the hard ones

std::string row_name(const ::testing::TestParamInfo<Row>& info) {
  std::string name;
  for (const char* p = info.param.torchjd; *p; ++p) {
    const char ch = *p;
    const bool keep =
        (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (keep)
      name += ch;
    else if (!name.empty() && name.back() != '_')
      name += '_';
  }
  while (!name.empty() && name.back() == '_') name.pop_back();
  name += cat("_T", info.param.tasks);
  if (info.param.dim != 16) name += cat("_D", info.param.dim);
  return name;
}

// Whether `expected` = Σ_t α_t·J_t with α_t·(Gα)_t = 1 for every task (to 1e-3): α from the
// normal equations (J Jᵀ)α = J·expected, J of full row rank in the random cases.
bool satisfies_nash(const std::vector<std::vector<double>>& jacobian,
                    const std::vector<double>& expected) {
  const int n = int(jacobian.size());
  std::vector<double> gram(size_t(n * n), 0.0), rhs(size_t(n), 0.0), alpha(size_t(n), 0.0);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j)
      for (size_t k = 0; k < expected.size(); ++k)
        gram[size_t(i * n + j)] += jacobian[size_t(i)][k] * jacobian[size_t(j)][k];
    for (size_t k = 0; k < expected.size(); ++k)
      rhs[size_t(i)] += jacobian[size_t(i)][k] * expected[k];
  }
  if (!kb::pivoted_solve(gram.data(), rhs.data(), n, 1e-12, alpha.data())) return false;
  for (int i = 0; i < n; ++i) {
    double g_alpha = 0;
    for (int j = 0; j < n; ++j) g_alpha += gram[size_t(i * n + j)] * alpha[size_t(j)];
    if (std::fabs(alpha[size_t(i)] * g_alpha - 1) > 1e-3) return false;
  }
  return true;
}

std::string show(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", v[i]);
  return s + "]";
}

#define SKIP_WITHOUT_TORCHJD()                                                              \
  if (testing::python_with_torchjd().empty())                                               \
  GTEST_SKIP() << "neither python3 nor /usr/bin/python3 can import torchjd and torch (pip " \
                  "install 'torchjd[quadprog_projector]')"

class BalancerInterop : public ::testing::TestWithParam<Row> {};

TEST_P(BalancerInterop, CombinesJacobiansAsTorchJDDoes) {
  SKIP_WITHOUT_TORCHJD();
  const Row& row = GetParam();
  const std::vector<InteropCase> cases =
      testing::torchjd_cases(row.torchjd, row.tasks, row.dim, kCases, 1000 + 10 * row.tasks);
  // TorchJD may refuse a hard case (the script leaves those out), never a random one.
  ASSERT_GE(cases.size(), size_t(kCases - 3));
  double worst = 0;
  const size_t compared = row.random_only ? size_t(kCases - 3) : cases.size();
  size_t failed_references = 0;
  for (size_t i = 0; i < compared; ++i) {
    const InteropCase& c = cases[i];
    ASSERT_EQ(c.jacobian.size(), size_t(row.tasks));
    if (row.skip_failed_nash && !satisfies_nash(c.jacobian, c.expected)) {
      ++failed_references;
      continue;
    }
    std::vector<double> ours = testing::our_aggregation(row.settings, c.jacobian);
    for (double& x : ours) x *= row.our_scale;
    const double error = testing::aggregation_error(ours, c.expected, c.jacobian);
    worst = std::max(worst, error);
    EXPECT_LE(error, row.tolerance)
        << "case " << i << "\n  ours    " << show(ours) << "\n  torchjd " << show(c.expected);
  }
  EXPECT_LE(failed_references, compared / 4) << "TorchJD's solve failed too often to compare";
  std::printf("[ %s, %d tasks: worst relative error %.3g over %zu cases (%zu left out: "
              "TorchJD's solve failed) ]\n",
              row.torchjd, row.tasks, worst, compared - failed_references, failed_references);
}

INSTANTIATE_TEST_SUITE_P(TorchJD, BalancerInterop, ::testing::ValuesIn(kRows), row_name);

TEST(BalancerInteropScript, RejectsABadArgumentWithExitStatusTwo) {
  // The arguments are checked before torch is imported: any Python 3 will do.
  const std::string py = testing::python_that_imports("json");
  if (py.empty()) GTEST_SKIP() << "no python3";
  for (const char* arguments : {"'UPGrad()' 0 4 2 1", "'UPGrad()' 2 x 2 1", "'UPGrad()' 2 4 2"}) {
    const auto [status, out] =
        testing::run_command(cat(py, " '", testing::balancer_interop_script(), "' ", arguments));
    ASSERT_TRUE(WIFEXITED(status)) << arguments;
    EXPECT_EQ(WEXITSTATUS(status), 2) << arguments << "\n" << out;
    EXPECT_NE(out.find("usage: balancer_interop.py"), std::string::npos) << out;
  }
  SKIP_WITHOUT_TORCHJD();
  const auto [status, out] = testing::run_command(cat(testing::python_with_torchjd(), " '",
                                                      testing::balancer_interop_script(),
                                                      "' 'NoSuchAggregator()' 2 4 2 1"));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_NE(out.find("NoSuchAggregator"), std::string::npos) << out;
}

}  // namespace
}  // namespace polytask
