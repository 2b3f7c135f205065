// CPU mixing ops (softmax, MMoE's gated mixture, the cross-stitch row): hand-computed cases,
// every gradient against central differences in double, the Overwrite/Accumulate contract with
// skipped (null) gradients, float against double, and results that do not depend on the thread
// count (a size above the OpenMP threshold).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/error.h"
#include "kernels/mixing.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cpu {
namespace {

using polytask::testing::all_close;
using polytask::testing::check_gradient;
using polytask::testing::dot;
using polytask::testing::poison;
using polytask::testing::random_vector;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

size_t sz(int64_t v) { return static_cast<size_t>(v); }

// Proves a backward adds on Accumulate and ignores old contents (even NaN) on Overwrite.
// `backward(dst, mode)` writes the gradient whose fresh value is `grad`.
template <class Backward>
void expect_accumulation_contract(const std::vector<double>& grad, Backward backward) {
  const auto seed = random_vector(grad.size(), 999, -3, 3);
  auto accumulated = seed;
  backward(accumulated.data(), GradMode::Accumulate);
  std::vector<double> expected = seed;
  for (size_t i = 0; i < expected.size(); ++i) expected[i] += grad[i];
  EXPECT_TRUE(all_close(accumulated, expected, 0.0, 0.0)) << "Accumulate";
  std::vector<double> overwritten(grad.size(), kNaN);
  backward(overwritten.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(overwritten, grad, 0.0, 0.0)) << "Overwrite over NaN";
}

// ---- softmax ----------------------------------------------------------------------------------

TEST(MixingSoftmax, HandComputedRows) {
  const double l3 = std::log(3.0);
  // Rows: {0, ln 3} -> {1/4, 3/4}; the same shifted by 1000 (the maximum is subtracted, so
  // nothing overflows); equal logits -> uniform.
  const std::vector<double> x = {0, l3, 1000, 1000 + l3, -7, -7};
  std::vector<double> y(x.size());
  poison(y);
  softmax_forward<double>(3, 2, x.data(), y.data());
  // 1000 + ln 3 itself is rounded at ~1e-13.
  EXPECT_TRUE(all_close(y, std::vector<double>{0.25, 0.75, 0.25, 0.75, 0.5, 0.5}, 1e-12, 0.0));

  // dy = {1, 0}: Σ y·dy = 1/4, dx = y ⊙ (dy - 1/4) = {3/16, -3/16}.
  const std::vector<double> dy = {1, 0, 1, 0, 2, 2};
  std::vector<double> dx(x.size());
  poison(dx);
  softmax_backward<double>(3, 2, y.data(), dy.data(), dx.data(), GradMode::Overwrite);
  // Equal dy in a row: softmax's outputs sum to 1, so the gradient is zero.
  EXPECT_TRUE(
      all_close(dx, std::vector<double>{0.1875, -0.1875, 0.1875, -0.1875, 0, 0}, 1e-12, 1e-16));
}

TEST(MixingSoftmax, ANaNMakesItsRowNaNAndLeavesTheOthers) {
  const std::vector<float> x = {1.0f, std::numeric_limits<float>::quiet_NaN(), 0.5f, 2.0f};
  std::vector<float> y(4);
  softmax_forward<float>(2, 2, x.data(), y.data());
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1])) << "a diverging gate must stay visible";
  EXPECT_NEAR(y[2] + y[3], 1.0f, 1e-7f);
}

TEST(MixingSoftmax, GradientMatchesCentralDifferences) {
  const int64_t rows = 3, features = 7;
  auto x = random_vector(sz(rows * features), 1, -2, 2);
  const auto r = random_vector(x.size(), 2);
  std::vector<double> y(x.size());
  const auto objective = [&] {
    softmax_forward<double>(rows, features, x.data(), y.data());
    return dot(y, r);
  };
  objective();
  std::vector<double> dx(x.size());
  softmax_backward<double>(rows, features, y.data(), r.data(), dx.data(), GradMode::Overwrite);
  EXPECT_TRUE(check_gradient("softmax dx", x, dx, objective));
  objective();  // y of the unperturbed x again
  expect_accumulation_contract(dx, [&](double* dst, GradMode mode) {
    softmax_backward<double>(rows, features, y.data(), r.data(), dst, mode);
  });
}

// ---- mixture ----------------------------------------------------------------------------------

TEST(MixingMixture, HandComputedForwardAndBackward) {
  // One row, 2 experts of 3 features: experts {1, 2, 3 | 10, 20, 30}, gate {1/4, 3/4}.
  const MixtureShape s{1, 2, 3};
  const std::vector<double> experts = {1, 2, 3, 10, 20, 30}, gate = {0.25, 0.75};
  std::vector<double> y(3);
  poison(y);
  mixture_forward<double>(s, experts.data(), gate.data(), y.data());
  EXPECT_TRUE(all_close(y, std::vector<double>{7.75, 15.5, 23.25}, 0.0, 0.0));

  const std::vector<double> dy = {1, -1, 2};
  std::vector<double> dexperts(6), dgate(2);
  poison(dexperts);
  poison(dgate);
  mixture_backward<double>(s, experts.data(), gate.data(), dy.data(), dexperts.data(),
                           GradMode::Overwrite, dgate.data(), GradMode::Overwrite);
  EXPECT_TRUE(
      all_close(dexperts, std::vector<double>{0.25, -0.25, 0.5, 0.75, -0.75, 1.5}, 0.0, 0.0));
  EXPECT_TRUE(all_close(dgate, std::vector<double>{5, 50}, 0.0, 0.0));  // 1 - 2 + 6, 10 - 20 + 60
}

TEST(MixingMixture, GradientsMatchCentralDifferences) {
  const MixtureShape s{3, 4, 5};
  auto experts = random_vector(sz(s.rows * s.experts * s.width), 3);
  auto gate = random_vector(sz(s.rows * s.experts), 4, 0, 1);
  const auto r = random_vector(sz(s.rows * s.width), 5);
  std::vector<double> y(r.size());
  const auto objective = [&] {
    mixture_forward<double>(s, experts.data(), gate.data(), y.data());
    return dot(y, r);
  };
  std::vector<double> dexperts(experts.size()), dgate(gate.size());
  mixture_backward<double>(s, experts.data(), gate.data(), r.data(), dexperts.data(),
                           GradMode::Overwrite, dgate.data(), GradMode::Overwrite);
  EXPECT_TRUE(check_gradient("mixture dexperts", experts, dexperts, objective));
  EXPECT_TRUE(check_gradient("mixture dgate", gate, dgate, objective));

  // Each gradient in its own mode, the other skipped (null) or in the opposite mode.
  expect_accumulation_contract(dexperts, [&](double* dst, GradMode mode) {
    mixture_backward<double>(s, experts.data(), gate.data(), r.data(), dst, mode, nullptr,
                             GradMode::Overwrite);
  });
  expect_accumulation_contract(dgate, [&](double* dst, GradMode mode) {
    // From zeros, either mode leaves exactly the fresh gradient.
    std::vector<double> other(experts.size(), 0.0);
    const GradMode opposite =
        mode == GradMode::Overwrite ? GradMode::Accumulate : GradMode::Overwrite;
    mixture_backward<double>(s, experts.data(), gate.data(), r.data(), other.data(), opposite, dst,
                             mode);
    EXPECT_TRUE(all_close(other, dexperts, 0.0, 0.0)) << "the experts' gradient in its own mode";
  });
}

// ---- cross-stitch -----------------------------------------------------------------------------

TEST(MixingCrossStitch, HandComputedForwardAndBackward) {
  const std::vector<double> x0 = {1, 2}, x1 = {10, 20}, x2 = {100, 200};
  const std::vector<const double*> xs = {x0.data(), x1.data(), x2.data()};
  const std::vector<double> alpha = {0.5, 0.25, 0.125};
  std::vector<double> y(2);
  poison(y);
  cross_stitch_forward<double>(2, 3, xs.data(), alpha.data(), y.data());
  EXPECT_TRUE(all_close(y, std::vector<double>{15.5, 31}, 0.0, 0.0));  // 0.5 + 2.5 + 12.5

  const std::vector<double> dy = {1, -1};
  std::vector<double> dx(2);
  poison(dx);
  cross_stitch_backward_input<double>(2, alpha.data(), 1, dy.data(), dx.data(),
                                      GradMode::Overwrite);
  EXPECT_TRUE(all_close(dx, std::vector<double>{0.25, -0.25}, 0.0, 0.0));
  std::vector<double> dalpha(3);
  poison(dalpha);
  cross_stitch_backward_alpha<double>(2, 3, xs.data(), dy.data(), dalpha.data(),
                                      GradMode::Overwrite);
  EXPECT_TRUE(all_close(dalpha, std::vector<double>{-1, -10, -100}, 0.0, 0.0));
}

TEST(MixingCrossStitch, GradientsMatchCentralDifferences) {
  const int64_t count = 3 * 5 * 7;
  const int inputs = 3;
  std::vector<std::vector<double>> x;
  for (int s = 0; s < inputs; ++s) x.push_back(random_vector(sz(count), 10 + uint64_t(s)));
  auto alpha = random_vector(sz(inputs), 20);
  const auto r = random_vector(sz(count), 21);
  std::vector<double> y(sz(count));
  const auto objective = [&] {
    const std::vector<const double*> xs = {x[0].data(), x[1].data(), x[2].data()};
    cross_stitch_forward<double>(count, inputs, xs.data(), alpha.data(), y.data());
    return dot(y, r);
  };
  const std::vector<const double*> xs = {x[0].data(), x[1].data(), x[2].data()};
  for (int s = 0; s < inputs; ++s) {
    std::vector<double> dx(sz(count));
    cross_stitch_backward_input<double>(count, alpha.data(), s, r.data(), dx.data(),
                                        GradMode::Overwrite);
    EXPECT_TRUE(check_gradient("cross_stitch dx", x[sz(s)], dx, objective)) << "input " << s;
    expect_accumulation_contract(dx, [&](double* dst, GradMode mode) {
      cross_stitch_backward_input<double>(count, alpha.data(), s, r.data(), dst, mode);
    });
  }
  std::vector<double> dalpha(sz(inputs));
  cross_stitch_backward_alpha<double>(count, inputs, xs.data(), r.data(), dalpha.data(),
                                      GradMode::Overwrite);
  EXPECT_TRUE(check_gradient("cross_stitch dalpha", alpha, dalpha, objective));
  expect_accumulation_contract(dalpha, [&](double* dst, GradMode mode) {
    cross_stitch_backward_alpha<double>(count, inputs, xs.data(), r.data(), dst, mode);
  });
}

TEST(MixingCrossStitch, RejectsInputCountsOutsideOneToEight) {
  const std::vector<float> x(4, 1.0f), alpha(9, 1.0f);
  const std::vector<const float*> xs(9, x.data());
  std::vector<float> y(4);
  EXPECT_THROW(cross_stitch_forward<float>(4, 0, xs.data(), alpha.data(), y.data()), Error);
  EXPECT_THROW(cross_stitch_forward<float>(4, 9, xs.data(), alpha.data(), y.data()), Error);
  EXPECT_THROW(
      cross_stitch_backward_alpha<float>(4, 9, xs.data(), x.data(), y.data(), GradMode::Overwrite),
      Error);
}

// ---- float, threads ---------------------------------------------------------------------------

// Float results are the double computation rounded once: within an ulp of the double kernels.
TEST(MixingFloat, FloatMatchesDoubleToRounding) {
  const MixtureShape s{33, 3, 17};
  const auto experts = random_vector(sz(s.rows * s.experts * s.width), 30);
  const auto logits = random_vector(sz(s.rows * s.experts), 31, -3, 3);
  const auto to_float = [](const std::vector<double>& v) {
    return std::vector<float>(v.begin(), v.end());
  };
  const auto to_double = [](const std::vector<float>& v) {
    return std::vector<double>(v.begin(), v.end());
  };
  // The double run starts from the float inputs, so only the arithmetic differs.
  const auto experts_f = to_float(experts), logits_f = to_float(logits);
  std::vector<float> gate_f(logits.size()), y_f(sz(s.rows * s.width));
  softmax_forward<float>(s.rows, s.experts, logits_f.data(), gate_f.data());
  mixture_forward<float>(s, experts_f.data(), gate_f.data(), y_f.data());
  std::vector<double> gate_d(logits.size()), y_d(y_f.size());
  softmax_forward<double>(s.rows, s.experts, to_double(logits_f).data(), gate_d.data());
  EXPECT_TRUE(all_close(to_double(gate_f), gate_d, 6e-8, 0.0));
  // The mixture from the float gate in double: then only the final rounding differs.
  mixture_forward<double>(s, to_double(experts_f).data(), to_double(gate_f).data(), y_d.data());
  EXPECT_TRUE(all_close(to_double(y_f), y_d, 6e-8, 1e-30));
}

// Above the OpenMP threshold: 1, 2 and 3 threads give the same bits (each sum is one thread's,
// in a fixed order).
TEST(MixingThreads, ResultsDoNotDependOnTheThreadCount) {
  const int64_t count = 100'003;
  const int inputs = 3;
  std::vector<std::vector<float>> x;
  for (int s = 0; s < inputs; ++s) x.push_back(random_vector<float>(sz(count), 40 + uint64_t(s)));
  const std::vector<const float*> xs = {x[0].data(), x[1].data(), x[2].data()};
  const auto alpha = random_vector<float>(sz(inputs), 43);
  const auto dy = random_vector<float>(sz(count), 44);
  const MixtureShape ms{count / 7, 7, 1};  // the first 14 285·7 elements as (rows, 7 experts, 1)
  const auto run = [&](int threads) {
    omp_set_num_threads(threads);
    std::vector<float> out(sz(count)), dalpha(sz(inputs)), sm(sz(count)), dsm(sz(count)),
        dgate(sz(ms.rows * ms.experts));
    cross_stitch_forward<float>(count, inputs, xs.data(), alpha.data(), out.data());
    cross_stitch_backward_alpha<float>(count, inputs, xs.data(), dy.data(), dalpha.data(),
                                       GradMode::Overwrite);
    softmax_forward<float>(count / 7, 7, x[0].data(), sm.data());
    softmax_backward<float>(count / 7, 7, sm.data(), dy.data(), dsm.data(), GradMode::Overwrite);
    mixture_backward<float>(ms, x[1].data(), x[2].data(), dy.data(), nullptr, GradMode::Overwrite,
                            dgate.data(), GradMode::Overwrite);
    out.insert(out.end(), dalpha.begin(), dalpha.end());
    out.insert(out.end(), sm.begin(), sm.end());
    out.insert(out.end(), dsm.begin(), dsm.end());
    out.insert(out.end(), dgate.begin(), dgate.end());
    return out;
  };
  const int saved = omp_get_max_threads();
  const auto one = run(1);
  EXPECT_EQ(run(2), one);
  EXPECT_EQ(run(3), one);
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace polytask::kernels::cpu
