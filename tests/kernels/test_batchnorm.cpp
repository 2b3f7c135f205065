// CPU batch normalisation: training forward against a naive double reference, Keras running
// statistics, inference with running statistics, backward against central differences, and
// the accumulation contract.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/batchnorm.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels {
namespace {

using polytask::testing::all_close;
using polytask::testing::all_finite;
using polytask::testing::check_gradient;
using polytask::testing::dot;
using polytask::testing::GradCheckOptions;
using polytask::testing::poison;
using polytask::testing::random_vector;

size_t elements(const BatchNormShape& s) { return static_cast<size_t>(s.n * s.c * s.spatial); }
size_t channels(const BatchNormShape& s) { return static_cast<size_t>(s.c); }

template <class T>
std::vector<T> cast_vector(const std::vector<double>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<T>(v[i]);
  return out;
}

// Naive training forward written straight from the definition, in double.
struct Reference {
  std::vector<double> y, mean, invstd, running_mean, running_var;
};

Reference reference_train(const BatchNormShape& s, const std::vector<double>& x,
                          const std::vector<double>& gamma, const std::vector<double>& beta,
                          double eps, double momentum, std::vector<double> running_mean,
                          std::vector<double> running_var) {
  Reference r;
  r.y.resize(x.size());
  for (int64_t c = 0; c < s.c; ++c) {
    std::vector<double> values;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.spatial; ++j)
        values.push_back(x[static_cast<size_t>((i * s.c + c) * s.spatial + j)]);
    double mean = 0;
    for (double v : values) mean += v;
    mean /= static_cast<double>(values.size());
    double var = 0;
    for (double v : values) var += (v - mean) * (v - mean);
    var /= static_cast<double>(values.size());
    const double invstd = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.spatial; ++j) {
        const size_t k = static_cast<size_t>((i * s.c + c) * s.spatial + j);
        r.y[k] =
            gamma[static_cast<size_t>(c)] * (x[k] - mean) * invstd + beta[static_cast<size_t>(c)];
      }
    r.mean.push_back(mean);
    r.invstd.push_back(invstd);
    const size_t cc = static_cast<size_t>(c);
    running_mean[cc] = momentum * running_mean[cc] + (1 - momentum) * mean;
    running_var[cc] = momentum * running_var[cc] + (1 - momentum) * var;
  }
  r.running_mean = running_mean;
  r.running_var = running_var;
  return r;
}

// Inputs with a channel offset and scale so mean and variance are not trivially 0 and 1.
struct Inputs {
  std::vector<double> x, gamma, beta, running_mean, running_var;
};

Inputs make_inputs(const BatchNormShape& s, uint64_t seed) {
  Inputs in;
  in.x = random_vector(elements(s), seed, -1.0, 1.0);
  const auto offset = random_vector(channels(s), seed + 1, -3.0, 3.0);
  const auto spread = random_vector(channels(s), seed + 2, 0.5, 2.0);
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t j = 0; j < s.spatial; ++j) {
        const size_t k = static_cast<size_t>((i * s.c + c) * s.spatial + j);
        in.x[k] = offset[static_cast<size_t>(c)] + spread[static_cast<size_t>(c)] * in.x[k];
      }
  in.gamma = random_vector(channels(s), seed + 3, 0.5, 1.5);
  in.beta = random_vector(channels(s), seed + 4, -0.5, 0.5);
  in.running_mean = random_vector(channels(s), seed + 5, -0.5, 0.5);
  in.running_var = random_vector(channels(s), seed + 6, 0.5, 1.5);
  return in;
}

template <class T>
struct Tolerance;
// Double: the kernel and the reference sum in a different order, a few ulps apart.
template <>
struct Tolerance<double> {
  static constexpr double rel = 1e-12, abs = 1e-12;
};
// Float: inputs and outputs round to 24 bits (6e-8) and |x̂| reaches ~3, so a few float ulps.
template <>
struct Tolerance<float> {
  static constexpr double rel = 1e-5, abs = 1e-5;
};

template <class T>
class BatchNormTyped : public ::testing::Test {};
using ScalarTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(BatchNormTyped, ScalarTypes);

TYPED_TEST(BatchNormTyped, ForwardTrainMatchesNaiveReference) {
  using T = TypeParam;
  for (const BatchNormShape s :
       {BatchNormShape{3, 5, 63}, BatchNormShape{7, 4, 1}, BatchNormShape{1, 2, 10}}) {
    const Inputs in = make_inputs(s, 11);
    const double eps = 1e-3, momentum = 0.99;
    // Reference from the exact values the typed kernel sees, so only the kernel's rounding
    // is measured.
    auto x = cast_vector<T>(in.x), gamma = cast_vector<T>(in.gamma), beta = cast_vector<T>(in.beta);
    auto running_mean = cast_vector<T>(in.running_mean),
         running_var = cast_vector<T>(in.running_var);
    const Reference ref = reference_train(
        s, std::vector<double>(x.begin(), x.end()), std::vector<double>(gamma.begin(), gamma.end()),
        std::vector<double>(beta.begin(), beta.end()), static_cast<double>(static_cast<T>(eps)),
        static_cast<double>(static_cast<T>(momentum)),
        std::vector<double>(running_mean.begin(), running_mean.end()),
        std::vector<double>(running_var.begin(), running_var.end()));

    std::vector<T> y(elements(s)), mean(channels(s)), invstd(channels(s));
    poison(y);
    poison(mean);
    poison(invstd);
    cpu::batchnorm_forward_train<T>(s, x.data(), gamma.data(), beta.data(), static_cast<T>(eps),
                                    static_cast<T>(momentum), y.data(), mean.data(), invstd.data(),
                                    running_mean.data(), running_var.data());
    constexpr double rel = Tolerance<T>::rel, abs = Tolerance<T>::abs;
    EXPECT_TRUE(all_close(y, ref.y, rel, abs));
    EXPECT_TRUE(all_close(mean, ref.mean, rel, abs));
    EXPECT_TRUE(all_close(invstd, ref.invstd, rel, abs));
    EXPECT_TRUE(all_close(running_mean, ref.running_mean, rel, abs));
    EXPECT_TRUE(all_close(running_var, ref.running_var, rel, abs));
  }
}

// Means 1e4 above a unit spread: the one-pass E[x²] - E[x]² would lose the variance entirely in
// float; the two-pass double statistics keep it.
TYPED_TEST(BatchNormTyped, ForwardTrainLargeMeanKeepsVariance) {
  using T = TypeParam;
  const BatchNormShape s{16, 2, 32};
  Inputs in = make_inputs(s, 5);
  for (auto& v : in.x) v += 1e4;
  auto x = cast_vector<T>(in.x), gamma = cast_vector<T>(in.gamma), beta = cast_vector<T>(in.beta);
  auto running_mean = cast_vector<T>(in.running_mean), running_var = cast_vector<T>(in.running_var);
  const Reference ref = reference_train(
      s, std::vector<double>(x.begin(), x.end()), std::vector<double>(gamma.begin(), gamma.end()),
      std::vector<double>(beta.begin(), beta.end()), static_cast<double>(T(1e-3)),
      static_cast<double>(T(0.99)), std::vector<double>(running_mean.begin(), running_mean.end()),
      std::vector<double>(running_var.begin(), running_var.end()));
  std::vector<T> y(elements(s)), mean(channels(s)), invstd(channels(s));
  cpu::batchnorm_forward_train<T>(s, x.data(), gamma.data(), beta.data(), T(1e-3), T(0.99),
                                  y.data(), mean.data(), invstd.data(), running_mean.data(),
                                  running_var.data());
  // The reference sees the same float x, and the kernel centres it with its double mean, so
  // only the output rounding remains (the 1e4 running mean itself is not compared).
  EXPECT_TRUE(all_close(invstd, ref.invstd, Tolerance<T>::rel, Tolerance<T>::abs));
  EXPECT_TRUE(all_close(y, ref.y, Tolerance<T>::rel, Tolerance<T>::abs));
  EXPECT_TRUE(all_close(running_var, ref.running_var, Tolerance<T>::rel, Tolerance<T>::abs));
}

// Two steps by hand with values exact in binary (momentum 0.75, integer inputs), in the Keras
// convention: running = momentum · running + (1 - momentum) · batch, biased batch variance.
TYPED_TEST(BatchNormTyped, RunningStatisticsAfterTwoSteps) {
  using T = TypeParam;
  const BatchNormShape s{2, 2, 1};
  const std::vector<T> gamma{1, 1}, beta{0, 0};
  std::vector<T> running_mean{0, 0}, running_var{1, 1};
  std::vector<T> y(4), mean(2), invstd(2);
  // Layout (N, C): channel 0 gets {1, 3} (mean 2, var 1), channel 1 gets {0, 4} (mean 2, var 4).
  const std::vector<T> x1{1, 0, 3, 4};
  cpu::batchnorm_forward_train<T>(s, x1.data(), gamma.data(), beta.data(), T(1e-3), T(0.75),
                                  y.data(), mean.data(), invstd.data(), running_mean.data(),
                                  running_var.data());
  EXPECT_EQ(running_mean, (std::vector<T>{0.5, 0.5}));  // 0.75·0 + 0.25·2
  EXPECT_EQ(running_var, (std::vector<T>{1.0, 1.75}));  // 0.75·1 + 0.25·{1, 4}; unbiased: {2, 8}
  // Channel 0 gets {5, 9} (mean 7, var 4), channel 1 gets {-2, 2} (mean 0, var 4).
  const std::vector<T> x2{5, -2, 9, 2};
  cpu::batchnorm_forward_train<T>(s, x2.data(), gamma.data(), beta.data(), T(1e-3), T(0.75),
                                  y.data(), mean.data(), invstd.data(), running_mean.data(),
                                  running_var.data());
  EXPECT_EQ(running_mean, (std::vector<T>{2.125, 0.375}));  // 0.75·0.5 + 0.25·{7, 0}
  EXPECT_EQ(running_var, (std::vector<T>{1.75, 2.3125}));   // 0.75·{1, 1.75} + 0.25·4
  EXPECT_EQ(mean, (std::vector<T>{7, 0}));
}

TYPED_TEST(BatchNormTyped, InferenceUsesRunningStatistics) {
  using T = TypeParam;
  const BatchNormShape s{4, 3, 5};
  const Inputs in = make_inputs(s, 21);
  const auto x = cast_vector<T>(in.x), gamma = cast_vector<T>(in.gamma),
             beta = cast_vector<T>(in.beta);
  const auto running_mean = cast_vector<T>(in.running_mean),
             running_var = cast_vector<T>(in.running_var);
  const T eps = T(1e-3);

  std::vector<T> y_infer(elements(s));
  poison(y_infer);
  cpu::batchnorm_forward_infer<T>(s, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                  running_var.data(), eps, y_infer.data());
  std::vector<double> expected(elements(s));
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t j = 0; j < s.spatial; ++j) {
        const size_t k = static_cast<size_t>((i * s.c + c) * s.spatial + j);
        const size_t cc = static_cast<size_t>(c);
        expected[k] =
            static_cast<double>(gamma[cc]) *
                (static_cast<double>(x[k]) - static_cast<double>(running_mean[cc])) /
                std::sqrt(static_cast<double>(running_var[cc]) + static_cast<double>(eps)) +
            static_cast<double>(beta[cc]);
      }
  EXPECT_TRUE(all_close(y_infer, expected, Tolerance<T>::rel, Tolerance<T>::abs));

  // The same batch in training mode normalises with its own statistics (channel means near
  // ±3 against running means near 0), so the outputs must differ by far more than rounding.
  std::vector<T> y_train(elements(s)), mean(channels(s)), invstd(channels(s));
  auto rm = running_mean, rv = running_var;
  cpu::batchnorm_forward_train<T>(s, x.data(), gamma.data(), beta.data(), eps, T(0.99),
                                  y_train.data(), mean.data(), invstd.data(), rm.data(), rv.data());
  double max_difference = 0;
  for (size_t k = 0; k < y_train.size(); ++k)
    max_difference =
        std::max(max_difference, std::abs(static_cast<double>(y_train[k] - y_infer[k])));
  EXPECT_GT(max_difference, 0.1);
}

// Gradients of dot(y, r) through the training forward (batch statistics depend on x) against
// central differences in double.
void check_backward_against_finite_differences(const BatchNormShape& s, uint64_t seed) {
  Inputs in = make_inputs(s, seed);
  const auto r = random_vector(elements(s), seed + 100);
  const double eps = 1e-3;
  std::vector<double> y(elements(s)), mean(channels(s)), invstd(channels(s));
  auto objective = [&] {
    auto rm = in.running_mean, rv = in.running_var;
    cpu::batchnorm_forward_train<double>(s, in.x.data(), in.gamma.data(), in.beta.data(), eps, 0.99,
                                         y.data(), mean.data(), invstd.data(), rm.data(),
                                         rv.data());
    return dot(y, r);
  };
  objective();
  std::vector<double> dx(elements(s)), dgamma(channels(s)), dbeta(channels(s));
  poison(dx);
  poison(dgamma);
  poison(dbeta);
  cpu::batchnorm_backward<double>(s, in.x.data(), r.data(), in.gamma.data(), mean.data(),
                                  invstd.data(), dx.data(), dgamma.data(), dbeta.data(),
                                  GradMode::Overwrite);
  ASSERT_TRUE(all_finite(dx) && all_finite(dgamma) && all_finite(dbeta));
  // Objective ~ Σ|r·y| ≈ 1e3 at most; round-off of the difference quotient ≈ 1e-16·1e3/1e-6
  // = 1e-7 absolute, truncation O(h²) is far below that.
  GradCheckOptions opt;
  opt.step = 1e-6;
  opt.rel_tol = 1e-5;
  opt.abs_tol = 1e-6;
  EXPECT_TRUE(check_gradient("dx", in.x, dx, objective, opt));
  EXPECT_TRUE(check_gradient("dgamma", in.gamma, dgamma, objective, opt));
  EXPECT_TRUE(check_gradient("dbeta", in.beta, dbeta, objective, opt));
}

TEST(BatchNormBackward, MatchesFiniteDifferencesImageShape) {
  check_backward_against_finite_differences({3, 5, 7 * 9}, 31);
}

TEST(BatchNormBackward, MatchesFiniteDifferencesDenseShape) {
  check_backward_against_finite_differences({7, 4, 1}, 41);
}

// Float against double on identical (float-representable) inputs.
TEST(BatchNormBackward, FloatAgreesWithDouble) {
  const BatchNormShape s{6, 3, 20};
  const Inputs in = make_inputs(s, 51);
  const auto r = random_vector(elements(s), 52);
  const auto xf = cast_vector<float>(in.x), gf = cast_vector<float>(in.gamma),
             bf = cast_vector<float>(in.beta), rf = cast_vector<float>(r);
  const std::vector<double> xd(xf.begin(), xf.end()), gd(gf.begin(), gf.end()),
      bd(bf.begin(), bf.end()), rd(rf.begin(), rf.end());

  std::vector<float> yf(elements(s)), mf(channels(s)), sf(channels(s)), rmf(channels(s), 0.f),
      rvf(channels(s), 1.f);
  std::vector<double> yd(elements(s)), md(channels(s)), sd(channels(s)), rmd(channels(s), 0.0),
      rvd(channels(s), 1.0);
  cpu::batchnorm_forward_train<float>(s, xf.data(), gf.data(), bf.data(), 1e-3f, 0.99f, yf.data(),
                                      mf.data(), sf.data(), rmf.data(), rvf.data());
  cpu::batchnorm_forward_train<double>(s, xd.data(), gd.data(), bd.data(),
                                       static_cast<double>(1e-3f), static_cast<double>(0.99f),
                                       yd.data(), md.data(), sd.data(), rmd.data(), rvd.data());
  std::vector<float> dxf(elements(s)), dgf(channels(s)), dbf(channels(s));
  std::vector<double> dxd(elements(s)), dgd(channels(s)), dbd(channels(s));
  cpu::batchnorm_backward<float>(s, xf.data(), rf.data(), gf.data(), mf.data(), sf.data(),
                                 dxf.data(), dgf.data(), dbf.data(), GradMode::Overwrite);
  cpu::batchnorm_backward<double>(s, xd.data(), rd.data(), gd.data(), md.data(), sd.data(),
                                  dxd.data(), dgd.data(), dbd.data(), GradMode::Overwrite);
  // Float keeps statistics in double but stores mean and 1/std as float (6e-8 relative); dx
  // subtracts sums of M = 120 terms (M·dy − Σdy − x̂·Σdy·x̂) that are ~M times the result in the
  // worst element, so allow ~M float ulps relative plus the same absolute floor.
  EXPECT_TRUE(all_close(yf, yd, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(dxf, dxd, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(dgf, dgd, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(dbf, dbd, 1e-5, 1e-5));
}

// dx, dgamma, dbeta from Overwrite into a fresh buffer, for the contract tests below.
struct Gradients {
  std::vector<double> dx, dgamma, dbeta;
};

struct BackwardCase {
  BatchNormShape s{4, 3, 6};
  Inputs in = make_inputs(s, 61);
  std::vector<double> dy = random_vector(elements(s), 62);
  std::vector<double> mean = std::vector<double>(channels(s));
  std::vector<double> invstd = std::vector<double>(channels(s));

  BackwardCase() {
    std::vector<double> y(elements(s));
    auto rm = in.running_mean, rv = in.running_var;
    cpu::batchnorm_forward_train<double>(s, in.x.data(), in.gamma.data(), in.beta.data(), 1e-3,
                                         0.99, y.data(), mean.data(), invstd.data(), rm.data(),
                                         rv.data());
  }

  void backward(Gradients& g, GradMode mode, bool with_dx = true) const {
    cpu::batchnorm_backward<double>(s, in.x.data(), dy.data(), in.gamma.data(), mean.data(),
                                    invstd.data(), with_dx ? g.dx.data() : nullptr, g.dgamma.data(),
                                    g.dbeta.data(), mode);
  }

  Gradients fresh() const {
    Gradients g{std::vector<double>(elements(s)), std::vector<double>(channels(s)),
                std::vector<double>(channels(s))};
    backward(g, GradMode::Overwrite);
    return g;
  }
};

std::vector<double> plus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i] + b[i];
  return out;
}

TEST(BatchNormBackward, AccumulateAddsToSeededGradients) {
  const BackwardCase bc;
  const Gradients expected = bc.fresh();
  Gradients seeded{random_vector(elements(bc.s), 71), random_vector(channels(bc.s), 72),
                   random_vector(channels(bc.s), 73)};
  const Gradients seeds = seeded;
  bc.backward(seeded, GradMode::Accumulate);
  // One extra rounding of the addition.
  EXPECT_TRUE(all_close(seeded.dx, plus(seeds.dx, expected.dx), 1e-14, 1e-15));
  EXPECT_TRUE(all_close(seeded.dgamma, plus(seeds.dgamma, expected.dgamma), 1e-14, 1e-15));
  EXPECT_TRUE(all_close(seeded.dbeta, plus(seeds.dbeta, expected.dbeta), 1e-14, 1e-15));
}

TEST(BatchNormBackward, OverwriteReplacesNaNSeed) {
  const BackwardCase bc;
  const Gradients expected = bc.fresh();
  Gradients g{std::vector<double>(elements(bc.s)), std::vector<double>(channels(bc.s)),
              std::vector<double>(channels(bc.s))};
  poison(g.dx);
  poison(g.dgamma);
  poison(g.dbeta);
  bc.backward(g, GradMode::Overwrite);
  EXPECT_EQ(g.dx, expected.dx);
  EXPECT_EQ(g.dgamma, expected.dgamma);
  EXPECT_EQ(g.dbeta, expected.dbeta);
}

TEST(BatchNormBackward, NullDxStillWritesParameterGradients) {
  const BackwardCase bc;
  const Gradients expected = bc.fresh();
  Gradients g{std::vector<double>(elements(bc.s)), std::vector<double>(channels(bc.s)),
              std::vector<double>(channels(bc.s))};
  poison(g.dgamma);
  poison(g.dbeta);
  bc.backward(g, GradMode::Overwrite, /*with_dx=*/false);
  EXPECT_EQ(g.dgamma, expected.dgamma);
  EXPECT_EQ(g.dbeta, expected.dbeta);
}

}  // namespace
}  // namespace polytask::kernels
