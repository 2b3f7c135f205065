// CPU Adam and SGD updates against three steps written out in the test from the formulas in
// kernels/optimizer.h (in double), plus a few steps small enough to do by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/error.h"
#include "kernels/optimizer.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels {
namespace {

using polytask::testing::all_close;

// Gradients of three steps on five elements: mixed signs, one zero, one large.
const std::vector<std::vector<double>> kGrads = {
    {0.5, -1.25, 0.0, 3.0, -0.01},
    {0.25, -0.5, 0.1, -2.0, 0.02},
    {-0.75, 1.0, -0.1, 1.5, 0.0},
};
const std::vector<double> kParams0 = {1.0, -0.5, 0.25, 2.0, -3.0};

template <class T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

struct State {
  std::vector<double> param, first, second;
};

// The header formula, literally: hyperparameters are floats in AdamParams, so the reference
// uses their float values widened to double.
State adam_reference(AdamParams p) {
  const double lr = p.lr, b1 = p.beta1, b2 = p.beta2, eps = p.eps, wd = p.weight_decay;
  State s{kParams0, std::vector<double>(kParams0.size()), std::vector<double>(kParams0.size())};
  for (size_t t = 1; t <= kGrads.size(); ++t) {
    for (size_t i = 0; i < kParams0.size(); ++i) {
      const double g = kGrads[t - 1][i];
      s.first[i] = b1 * s.first[i] + (1 - b1) * g;
      s.second[i] = b2 * s.second[i] + (1 - b2) * g * g;
      const double m_hat = s.first[i] / (1 - std::pow(b1, static_cast<double>(t)));
      const double v_hat = s.second[i] / (1 - std::pow(b2, static_cast<double>(t)));
      s.param[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + wd * s.param[i]);
    }
  }
  return s;
}

template <class T>
State adam_kernel(AdamParams p) {
  auto param = as<T>(kParams0);
  std::vector<T> m(param.size(), T(0)), v(param.size(), T(0));
  for (size_t t = 1; t <= kGrads.size(); ++t) {
    p.step = static_cast<int64_t>(t);
    const auto g = as<T>(kGrads[t - 1]);
    cpu::adam_update<T>(static_cast<int64_t>(param.size()), p, param.data(), g.data(), m.data(),
                        v.data());
  }
  return {std::vector<double>(param.begin(), param.end()), std::vector<double>(m.begin(), m.end()),
          std::vector<double>(v.begin(), v.end())};
}

template <class T>
struct Tolerance;
// Double: the kernel factors the bias corrections differently from the literal formula; a few
// ulps of reordering.
template <>
struct Tolerance<double> {
  static constexpr double rel = 1e-13, abs = 1e-15;
};
// Float: every state element rounds to 24 bits (6e-8) on each of three steps, and v = g² terms
// of 1e-4 sit beside 9 (the 3.0 gradient); a few float ulps of the values involved.
template <>
struct Tolerance<float> {
  static constexpr double rel = 1e-6, abs = 1e-7;
};

template <class T>
class OptimizerTyped : public ::testing::Test {};
using ScalarTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(OptimizerTyped, ScalarTypes);

TYPED_TEST(OptimizerTyped, AdamMatchesFormulaOverThreeSteps) {
  using T = TypeParam;
  AdamParams p;
  p.lr = 0.01f;
  const State expected = adam_reference(p), actual = adam_kernel<T>(p);
  EXPECT_TRUE(all_close(actual.param, expected.param, Tolerance<T>::rel, Tolerance<T>::abs));
  EXPECT_TRUE(all_close(actual.first, expected.first, Tolerance<T>::rel, Tolerance<T>::abs));
  EXPECT_TRUE(all_close(actual.second, expected.second, Tolerance<T>::rel, Tolerance<T>::abs));
}

TYPED_TEST(OptimizerTyped, AdamWithDecoupledWeightDecayMatchesFormula) {
  using T = TypeParam;
  AdamParams p;
  p.lr = 0.05f;
  p.beta1 = 0.8f;
  p.beta2 = 0.99f;
  p.eps = 1e-3f;  // large enough that where eps enters matters at these gradient sizes
  p.weight_decay = 0.1f;
  const State expected = adam_reference(p), actual = adam_kernel<T>(p);
  EXPECT_TRUE(all_close(actual.param, expected.param, Tolerance<T>::rel, Tolerance<T>::abs));
  EXPECT_TRUE(all_close(actual.first, expected.first, Tolerance<T>::rel, Tolerance<T>::abs));
  EXPECT_TRUE(all_close(actual.second, expected.second, Tolerance<T>::rel, Tolerance<T>::abs));
  // The decay is decoupled: a zero gradient still shrinks the parameter by lr·wd·p, which an
  // L2 term folded into g would instead turn into a full Adam step of size ~lr.
  const AdamParams no_decay = [&] {
    AdamParams q = p;
    q.weight_decay = 0;
    return q;
  }();
  EXPECT_GT(std::abs(adam_kernel<T>(no_decay).param[0] - actual.param[0]), 1e-3);
}

// By hand: at t = 1 the bias corrections undo (1-β1) and (1-β2), so m̂ = g and v̂ = g² and the
// step is lr · g / (|g| + eps).
TYPED_TEST(OptimizerTyped, AdamFirstStepIsLrTimesSign) {
  using T = TypeParam;
  AdamParams p;
  p.lr = 0.5f;
  p.eps = 1e-7f;
  std::vector<T> param{1, 1, 1}, m(3, T(0)), v(3, T(0));
  const std::vector<T> g{2, -4, 1e-3};
  cpu::adam_update<T>(3, p, param.data(), g.data(), m.data(), v.data());
  const double eps = static_cast<double>(1e-7f);
  const std::vector<double> expected{1 - 0.5 * 2 / (2 + eps), 1 + 0.5 * 4 / (4 + eps),
                                     1 - 0.5 * 1e-3 / (1e-3 + eps)};
  // Float: m, v, the corrections and the step each round to 24 bits; a few float ulps.
  EXPECT_TRUE(all_close(param, expected, Tolerance<T>::rel, Tolerance<T>::abs));
}

TEST(Optimizer, AdamRejectsStepZero) {
  AdamParams p;
  p.step = 0;
  std::vector<float> param(2), g(2), m(2), v(2);
  EXPECT_THROW(cpu::adam_update<float>(2, p, param.data(), g.data(), m.data(), v.data()),
               polytask::Error);
}

// torch.optim.SGD literally (dampening 0): g' = g + wd·p; buf = g' on the first step and
// momentum·buf + g' after; p -= lr·(nesterov ? g' + momentum·buf : buf).
State sgd_reference(SgdParams p) {
  const double lr = p.lr, momentum = p.momentum, wd = p.weight_decay;
  State s{kParams0, std::vector<double>(kParams0.size()), {}};
  for (size_t t = 0; t < kGrads.size(); ++t) {
    for (size_t i = 0; i < kParams0.size(); ++i) {
      const double g = kGrads[t][i] + wd * s.param[i];
      s.first[i] = t == 0 ? g : momentum * s.first[i] + g;
      s.param[i] -= lr * (p.nesterov ? g + momentum * s.first[i] : s.first[i]);
    }
  }
  return s;
}

template <class T>
State sgd_kernel(const SgdParams& p) {
  auto param = as<T>(kParams0);
  std::vector<T> velocity(param.size(), T(0));  // the engine's zero initialisation
  for (const auto& gd : kGrads) {
    const auto g = as<T>(gd);
    cpu::sgd_update<T>(static_cast<int64_t>(param.size()), p, param.data(), g.data(),
                       velocity.data());
  }
  return {std::vector<double>(param.begin(), param.end()),
          std::vector<double>(velocity.begin(), velocity.end()),
          {}};
}

TYPED_TEST(OptimizerTyped, SgdVariantsMatchTorchOverThreeSteps) {
  using T = TypeParam;
  struct Variant {
    const char* name;
    SgdParams p;
  };
  const Variant variants[] = {
      {"plain", {0.1f, 0.0f, false, 0.0f}},
      {"momentum", {0.1f, 0.9f, false, 0.0f}},
      {"nesterov", {0.1f, 0.9f, true, 0.0f}},
      {"weight decay", {0.1f, 0.0f, false, 0.01f}},
      {"nesterov + weight decay", {0.05f, 0.8f, true, 0.05f}},
  };
  for (const Variant& variant : variants) {
    const State expected = sgd_reference(variant.p), actual = sgd_kernel<T>(variant.p);
    EXPECT_TRUE(all_close(actual.param, expected.param, Tolerance<T>::rel, Tolerance<T>::abs))
        << variant.name;
    EXPECT_TRUE(all_close(actual.first, expected.first, Tolerance<T>::rel, Tolerance<T>::abs))
        << variant.name;
  }
}

// By hand with lr 0.5, momentum 0.5 and a constant gradient 1 (all exact in binary):
// buf = 1, 1.5, 1.75; heavy ball moves 0.5, 0.75, 0.875; Nesterov moves 0.5·(1 + 0.5·buf) =
// 0.75, 0.875, 0.9375.
TYPED_TEST(OptimizerTyped, SgdMomentumByHand) {
  using T = TypeParam;
  for (const bool nesterov : {false, true}) {
    SgdParams p{0.5f, 0.5f, nesterov, 0.0f};
    std::vector<T> param{0}, velocity{0};
    const std::vector<T> g{1};
    const double moves[2][3] = {{0.5, 0.75, 0.875}, {0.75, 0.875, 0.9375}};
    const double bufs[3] = {1, 1.5, 1.75};
    double expected = 0;
    for (int t = 0; t < 3; ++t) {
      cpu::sgd_update<T>(1, p, param.data(), g.data(), velocity.data());
      expected -= moves[nesterov ? 1 : 0][t];
      EXPECT_EQ(static_cast<double>(velocity[0]), bufs[t]) << "step " << t + 1;
      EXPECT_EQ(static_cast<double>(param[0]), expected)
          << "step " << t + 1 << (nesterov ? " nesterov" : " heavy ball");
    }
  }
}

// Large enough to take the OpenMP path; every element must match the serial small-count call.
TYPED_TEST(OptimizerTyped, ParallelPathMatchesSmallCalls) {
  using T = TypeParam;
  const size_t count = size_t{1} << 17;
  const auto pd = polytask::testing::random_vector(count, 1);
  const auto gd = polytask::testing::random_vector(count, 2);
  const auto param0 = as<T>(pd), g = as<T>(gd);
  AdamParams p;
  p.step = 3;
  auto big = param0, small = param0;
  std::vector<T> mb(count, T(0.1)), vb(count, T(0.2)), ms = mb, vs = vb;
  cpu::adam_update<T>(static_cast<int64_t>(count), p, big.data(), g.data(), mb.data(), vb.data());
  for (size_t i = 0; i < count; i += 4096)
    cpu::adam_update<T>(4096, p, small.data() + i, g.data() + i, ms.data() + i, vs.data() + i);
  EXPECT_EQ(big, small);
  EXPECT_EQ(mb, ms);
  EXPECT_EQ(vb, vs);
}

}  // namespace
}  // namespace polytask::kernels
