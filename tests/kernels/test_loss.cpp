// CPU losses: forward against textbook formulas on NaN-poisoned outputs, scale·∂loss/∂input
// against central differences of scale·loss in double, float against double, the
// Overwrite/Accumulate contract, stability at ±1000 logits, label checks and empty batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/loss.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cpu {
namespace {

using polytask::testing::all_close;
using polytask::testing::all_finite;
using polytask::testing::check_gradient;
using polytask::testing::GradCheckOptions;
using polytask::testing::poison;
using polytask::testing::random_vector;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kRows = 7, kClasses = 11, kCount = 3 * 5 * 7;
constexpr double kScale = 0.7;  // a task weight that is not 1, so a dropped scale shows

size_t sz(int64_t v) { return static_cast<size_t>(v); }

std::vector<int32_t> random_labels(int64_t rows, int64_t classes, uint64_t seed) {
  const auto u = random_vector(sz(rows), seed, 0.0, static_cast<double>(classes));
  std::vector<int32_t> labels(u.size());
  for (size_t i = 0; i < u.size(); ++i) labels[i] = static_cast<int32_t>(u[i]);
  return labels;
}

// Soft target rows; `normalised` makes each row sum to 1, otherwise rows sum to anything in
// (0, classes), which exercises the general p·Σt - t gradient.
std::vector<double> random_targets(int64_t rows, int64_t classes, uint64_t seed, bool normalised) {
  auto t = random_vector(sz(rows * classes), seed, 0.0, 1.0);
  if (normalised)
    for (int64_t i = 0; i < rows; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < classes; ++j) sum += t[sz(i * classes + j)];
      for (int64_t j = 0; j < classes; ++j) t[sz(i * classes + j)] /= sum;
    }
  return t;
}

std::vector<double> plus(std::vector<double> a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

template <class To, class From>
std::vector<To> convert(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

// Proves a backward adds on Accumulate and ignores old contents (even NaN) on Overwrite.
template <class Backward>
void expect_accumulation_contract(const std::vector<double>& grad, Backward backward) {
  const auto seed = random_vector(grad.size(), 999, -3, 3);
  auto accumulated = seed;
  backward(accumulated.data(), GradMode::Accumulate);
  // store_grad adds exactly once, so seed + grad is reproduced to the last bit.
  EXPECT_TRUE(all_close(accumulated, plus(seed, grad), 0.0, 0.0)) << "Accumulate";
  std::vector<double> overwritten(grad.size(), kNaN);
  backward(overwritten.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(overwritten, grad, 0.0, 0.0)) << "Overwrite over NaN";
}

// Textbook softmax without the max shift: fine for the |z| ≤ 3 logits these tests draw.
std::vector<double> naive_softmax(int64_t rows, int64_t classes, const std::vector<double>& z) {
  std::vector<double> p(z.size());
  for (int64_t i = 0; i < rows; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(z[sz(i * classes + j)]);
    for (int64_t j = 0; j < classes; ++j)
      p[sz(i * classes + j)] = std::exp(z[sz(i * classes + j)]) / sum;
  }
  return p;
}

// ---- softmax cross-entropy with integer labels -------------------------------------------

TEST(SoftmaxCrossEntropy, ForwardMatchesTextbookFormula) {
  const auto z = random_vector(sz(kRows * kClasses), 1, -3, 3);
  const auto labels = random_labels(kRows, kClasses, 2);
  std::vector<double> probs(z.size());
  poison(probs);
  double loss = kNaN;
  softmax_cross_entropy_forward(kRows, kClasses, z.data(), labels.data(), probs.data(), &loss);
  const auto p = naive_softmax(kRows, kClasses, z);
  double expected = 0;
  for (int64_t i = 0; i < kRows; ++i) expected -= std::log(p[sz(i * kClasses + labels[sz(i)])]);
  expected /= kRows;
  // Shifted and unshifted evaluations differ only by a few double roundings.
  EXPECT_TRUE(all_close(probs, p, 1e-13, 1e-15));
  EXPECT_NEAR(loss, expected, 1e-13 * std::abs(expected));
}

TEST(SoftmaxCrossEntropy, GradientMatchesCentralDifferences) {
  auto z = random_vector(sz(kRows * kClasses), 3, -3, 3);
  const auto labels = random_labels(kRows, kClasses, 4);
  // The objective has its own probs: check_gradient leaves its last call's perturbed state in
  // whatever buffer the objective writes, and the accumulation check below reuses probs.
  std::vector<double> probs(z.size()), scratch(z.size());
  const auto objective = [&] {
    double loss = 0;
    softmax_cross_entropy_forward(kRows, kClasses, z.data(), labels.data(), scratch.data(), &loss);
    return kScale * loss;
  };
  double unused = 0;
  softmax_cross_entropy_forward(kRows, kClasses, z.data(), labels.data(), probs.data(), &unused);
  std::vector<double> dz(z.size());
  poison(dz);
  softmax_cross_entropy_backward(kRows, kClasses, probs.data(), labels.data(), kScale, dz.data(),
                                 GradMode::Overwrite);
  // Smooth objective: rounding ~1e-16·|f|/h ≈ 1e-10 and truncation h²·f''' ≈ 1e-12 are far
  // below the 1e-6 relative tolerance on gradients of order 0.01.
  EXPECT_TRUE(check_gradient("softmax-CE dlogits", z, dz, objective));
  expect_accumulation_contract(dz, [&](double* d, GradMode mode) {
    softmax_cross_entropy_backward(kRows, kClasses, probs.data(), labels.data(), kScale, d, mode);
  });
}

TEST(SoftmaxCrossEntropy, StableForHugeLogits) {
  // Row 0: the label holds the +1000 logit (loss ≈ 0); row 1: the label holds -1000, 2000 below
  // the maximum (loss ≈ 2000). A naive exp() overflows to inf and log(0) to -inf here.
  const int64_t rows = 2, classes = 3;
  std::vector<double> z = {1000, -1000, 0, 1000, -1000, 0};
  const std::vector<int32_t> labels = {0, 1};
  std::vector<double> probs(z.size());
  poison(probs);
  double loss = kNaN;
  softmax_cross_entropy_forward(rows, classes, z.data(), labels.data(), probs.data(), &loss);
  ASSERT_TRUE(std::isfinite(loss));
  ASSERT_TRUE(all_finite(probs));
  EXPECT_NEAR(loss, (0.0 + 2000.0) / 2, 1e-9);
  std::vector<double> dz(z.size());
  softmax_cross_entropy_backward(rows, classes, probs.data(), labels.data(), kScale, dz.data(),
                                 GradMode::Overwrite);
  // p ≈ (1, 0, 0) in both rows up to e^-1000, so dz = scale·(p - onehot)/rows exactly.
  const std::vector<double> expected = {0, 0, 0, kScale / 2, -kScale / 2, 0};
  EXPECT_TRUE(all_close(dz, expected, 1e-12, 1e-12));
  // The loss is linear in the logits out here, so even a large step has no truncation error;
  // h = 1e-4 keeps the ~1e-16·1000/h rounding at 1e-9.
  GradCheckOptions opt;
  opt.step = 1e-4;
  opt.abs_tol = 1e-7;
  const auto objective = [&] {
    double l = 0;
    std::vector<double> p(z.size());
    softmax_cross_entropy_forward(rows, classes, z.data(), labels.data(), p.data(), &l);
    return kScale * l;
  };
  EXPECT_TRUE(check_gradient("huge-logit dlogits", z, dz, objective, opt));

  std::vector<float> zf(z.begin(), z.end()), pf(z.size());
  float lossf = std::numeric_limits<float>::quiet_NaN();
  softmax_cross_entropy_forward(rows, classes, zf.data(), labels.data(), pf.data(), &lossf);
  EXPECT_TRUE(std::isfinite(lossf));
  EXPECT_NEAR(lossf, 1000.0f, 1e-3f);
}

TEST(SoftmaxCrossEntropy, OutOfRangeLabelThrowsNamingTheRow) {
  const auto z = random_vector(sz(kRows * kClasses), 5);
  for (const int32_t bad : {static_cast<int32_t>(kClasses), -1}) {
    auto labels = random_labels(kRows, kClasses, 6);
    labels[3] = bad;
    std::vector<double> probs(z.size());
    poison(probs);
    double loss = kNaN;
    try {
      softmax_cross_entropy_forward(kRows, kClasses, z.data(), labels.data(), probs.data(), &loss);
      ADD_FAILURE() << "label " << bad << " was accepted";
    } catch (const polytask::Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("row 3"), std::string::npos) << message;
      EXPECT_NE(message.find("label " + std::to_string(bad)), std::string::npos) << message;
    }
    // Labels are checked before any write, so a rejected batch leaves the outputs as they were.
    EXPECT_TRUE(std::isnan(loss));
    EXPECT_TRUE(std::all_of(probs.begin(), probs.end(), [](double p) { return std::isnan(p); }));

    std::vector<double> dz(z.size(), 0.0);
    EXPECT_THROW(softmax_cross_entropy_backward(kRows, kClasses, z.data(), labels.data(), 1.0,
                                                dz.data(), GradMode::Overwrite),
                 polytask::Error);
  }
}

// ---- softmax cross-entropy with target rows ----------------------------------------------

TEST(SoftmaxCrossEntropyTargets, ForwardMatchesTextbookFormula) {
  const auto z = random_vector(sz(kRows * kClasses), 10, -3, 3);
  const auto t = random_targets(kRows, kClasses, 11, true);
  std::vector<double> probs(z.size());
  poison(probs);
  double loss = kNaN;
  softmax_cross_entropy_targets_forward(kRows, kClasses, z.data(), t.data(), probs.data(), &loss);
  const auto p = naive_softmax(kRows, kClasses, z);
  double expected = 0;
  for (size_t k = 0; k < p.size(); ++k) expected -= t[k] * std::log(p[k]);
  expected /= kRows;
  EXPECT_TRUE(all_close(probs, p, 1e-13, 1e-15));
  EXPECT_NEAR(loss, expected, 1e-13 * std::abs(expected));
}

TEST(SoftmaxCrossEntropyTargets, GradientMatchesCentralDifferences) {
  // Normalised rows (where the gradient is p - t) and unnormalised ones (p·Σt - t).
  for (const bool normalised : {true, false}) {
    auto z = random_vector(sz(kRows * kClasses), 12, -3, 3);
    const auto t = random_targets(kRows, kClasses, 13, normalised);
    std::vector<double> probs(z.size()), scratch(z.size());
    const auto objective = [&] {
      double loss = 0;
      softmax_cross_entropy_targets_forward(kRows, kClasses, z.data(), t.data(), scratch.data(),
                                            &loss);
      return kScale * loss;
    };
    double unused = 0;
    softmax_cross_entropy_targets_forward(kRows, kClasses, z.data(), t.data(), probs.data(),
                                          &unused);
    std::vector<double> dz(z.size());
    poison(dz);
    softmax_cross_entropy_targets_backward(kRows, kClasses, probs.data(), t.data(), kScale,
                                           dz.data(), GradMode::Overwrite);
    EXPECT_TRUE(check_gradient(
        normalised ? "targets dlogits (rows sum to 1)" : "targets dlogits (unnormalised rows)", z,
        dz, objective));
    expect_accumulation_contract(dz, [&](double* d, GradMode mode) {
      softmax_cross_entropy_targets_backward(kRows, kClasses, probs.data(), t.data(), kScale, d,
                                             mode);
    });
  }
}

TEST(SoftmaxCrossEntropyTargets, OneHotRowsAgreeWithLabels) {
  const auto z = random_vector(sz(kRows * kClasses), 14, -3, 3);
  const auto labels = random_labels(kRows, kClasses, 15);
  std::vector<double> onehot(z.size(), 0.0);
  for (int64_t i = 0; i < kRows; ++i) onehot[sz(i * kClasses + labels[sz(i)])] = 1.0;
  std::vector<double> p_labels(z.size()), p_targets(z.size()), d_labels(z.size()),
      d_targets(z.size());
  double l_labels = 0, l_targets = 0;
  softmax_cross_entropy_forward(kRows, kClasses, z.data(), labels.data(), p_labels.data(),
                                &l_labels);
  softmax_cross_entropy_targets_forward(kRows, kClasses, z.data(), onehot.data(), p_targets.data(),
                                        &l_targets);
  softmax_cross_entropy_backward(kRows, kClasses, p_labels.data(), labels.data(), kScale,
                                 d_labels.data(), GradMode::Overwrite);
  softmax_cross_entropy_targets_backward(kRows, kClasses, p_targets.data(), onehot.data(), kScale,
                                         d_targets.data(), GradMode::Overwrite);
  EXPECT_EQ(p_labels, p_targets);
  EXPECT_NEAR(l_labels, l_targets, 1e-14 * l_labels);  // same terms, possibly summed in
                                                       // another order
  EXPECT_TRUE(all_close(d_targets, d_labels, 1e-15, 1e-17));
}

TEST(SoftmaxCrossEntropyTargets, StableForHugeLogits) {
  // A target mass on a logit 2000 below the maximum: -log p = 2000, not -0·log 0 = NaN.
  const std::vector<double> z = {1000, -1000, 0};
  const std::vector<double> t = {0.5, 0.5, 0.0};
  std::vector<double> probs(3);
  double loss = kNaN;
  softmax_cross_entropy_targets_forward(1, 3, z.data(), t.data(), probs.data(), &loss);
  EXPECT_NEAR(loss, 0.5 * 0 + 0.5 * 2000, 1e-9);
  std::vector<double> dz(3);
  softmax_cross_entropy_targets_backward(1, 3, probs.data(), t.data(), 1.0, dz.data(),
                                         GradMode::Overwrite);
  EXPECT_TRUE(all_close(dz, std::vector<double>{0.5, -0.5, 0.0}, 1e-12, 1e-12));
}

// ---- binary cross-entropy on logits ------------------------------------------------------

TEST(BinaryCrossEntropy, ForwardMatchesTextbookFormula) {
  const auto z = random_vector(sz(kCount), 20, -4, 4);
  const auto t = random_vector(sz(kCount), 21, 0, 1);
  double loss = kNaN;
  binary_cross_entropy_forward(kCount, z.data(), t.data(), &loss);
  double expected = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    const double s = 1 / (1 + std::exp(-z[i]));
    expected -= t[i] * std::log(s) + (1 - t[i]) * std::log(1 - s);
  }
  expected /= kCount;
  // log(1 - σ) of the textbook form loses ~1e-12 relative when σ is near 1 at |z| = 4.
  EXPECT_NEAR(loss, expected, 1e-11 * std::abs(expected));
}

TEST(BinaryCrossEntropy, GradientMatchesCentralDifferences) {
  auto z = random_vector(sz(kCount), 22, -4, 4);
  const auto t = random_vector(sz(kCount), 23, 0, 1);
  const auto objective = [&] {
    double loss = 0;
    binary_cross_entropy_forward(kCount, z.data(), t.data(), &loss);
    return kScale * loss;
  };
  std::vector<double> dz(z.size());
  poison(dz);
  binary_cross_entropy_backward(kCount, z.data(), t.data(), kScale, dz.data(), GradMode::Overwrite);
  // Gradients are ~1e-3 (divided by 105 elements): a 1e-10 absolute floor keeps the check
  // meaningful while allowing the ~1e-11 rounding of a 1e-6 central difference.
  GradCheckOptions opt;
  opt.abs_tol = 1e-10;
  EXPECT_TRUE(check_gradient("BCE dlogits", z, dz, objective, opt));
  expect_accumulation_contract(dz, [&](double* d, GradMode mode) {
    binary_cross_entropy_backward(kCount, z.data(), t.data(), kScale, d, mode);
  });
}

TEST(BinaryCrossEntropy, StableForHugeLogits) {
  const std::vector<double> z = {1000, -1000, 1000, -1000};
  const std::vector<double> t = {1, 0, 0, 1};
  double loss = kNaN;
  binary_cross_entropy_forward(4, z.data(), t.data(), &loss);
  EXPECT_NEAR(loss, (0 + 0 + 1000 + 1000) / 4.0, 1e-9);
  std::vector<double> dz(4);
  binary_cross_entropy_backward(4, z.data(), t.data(), 1.0, dz.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(dz, std::vector<double>{0, 0, 0.25, -0.25}, 0.0, 1e-15));
  const std::vector<float> zf(z.begin(), z.end()), tf(t.begin(), t.end());
  float lossf = std::numeric_limits<float>::quiet_NaN();
  binary_cross_entropy_forward(4, zf.data(), tf.data(), &lossf);
  EXPECT_NEAR(lossf, 500.0f, 1e-3f);
}

// ---- mean squared error ------------------------------------------------------------------

TEST(MeanSquaredError, ForwardAndGradient) {
  auto pred = random_vector(sz(kCount), 30);
  const auto target = random_vector(sz(kCount), 31);
  double loss = kNaN;
  mse_forward(kCount, pred.data(), target.data(), &loss);
  double expected = 0;
  for (size_t i = 0; i < pred.size(); ++i)
    expected += (pred[i] - target[i]) * (pred[i] - target[i]);
  expected /= kCount;
  EXPECT_NEAR(loss, expected, 1e-14 * expected);

  const auto objective = [&] {
    double l = 0;
    mse_forward(kCount, pred.data(), target.data(), &l);
    return kScale * l;
  };
  std::vector<double> dpred(pred.size());
  poison(dpred);
  mse_backward(kCount, pred.data(), target.data(), kScale, dpred.data(), GradMode::Overwrite);
  // Quadratic objective: central differences are exact but for ~1e-11 rounding.
  GradCheckOptions opt;
  opt.abs_tol = 1e-10;
  EXPECT_TRUE(check_gradient("MSE dpred", pred, dpred, objective, opt));
  expect_accumulation_contract(dpred, [&](double* d, GradMode mode) {
    mse_backward(kCount, pred.data(), target.data(), kScale, d, mode);
  });
}

// ---- across losses -----------------------------------------------------------------------

TEST(Losses, FloatAgreesWithDouble) {
  // Both runs read the same float-representable inputs; the kernels compute in double inside,
  // so float differs only by rounding inputs-to-outputs once: ~6e-8 relative, plus an absolute
  // floor for gradient entries that nearly cancel (p ≈ t).
  constexpr double kRel = 1e-6, kAbs = 1e-8;
  const auto zf = random_vector<float>(sz(kRows * kClasses), 40, -3, 3);
  const auto tf = convert<float>(random_targets(kRows, kClasses, 41, true));
  const auto labels = random_labels(kRows, kClasses, 42);
  const auto zd = convert<double>(zf), td = convert<double>(tf);
  const size_t n = zf.size();
  std::vector<float> pf(n), df(n);
  std::vector<double> pd(n), dd(n);
  float lf = 0;
  double ld = 0;

  softmax_cross_entropy_forward(kRows, kClasses, zf.data(), labels.data(), pf.data(), &lf);
  softmax_cross_entropy_forward(kRows, kClasses, zd.data(), labels.data(), pd.data(), &ld);
  EXPECT_NEAR(lf, ld, kRel * ld);
  EXPECT_TRUE(all_close(pf, pd, kRel, kAbs));
  softmax_cross_entropy_backward(kRows, kClasses, pf.data(), labels.data(), 0.7f, df.data(),
                                 GradMode::Overwrite);
  softmax_cross_entropy_backward(kRows, kClasses, pd.data(), labels.data(),
                                 static_cast<double>(0.7f), dd.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(df, dd, kRel, kAbs));

  softmax_cross_entropy_targets_forward(kRows, kClasses, zf.data(), tf.data(), pf.data(), &lf);
  softmax_cross_entropy_targets_forward(kRows, kClasses, zd.data(), td.data(), pd.data(), &ld);
  EXPECT_NEAR(lf, ld, kRel * ld);
  softmax_cross_entropy_targets_backward(kRows, kClasses, pf.data(), tf.data(), 0.7f, df.data(),
                                         GradMode::Overwrite);
  softmax_cross_entropy_targets_backward(kRows, kClasses, pd.data(), td.data(),
                                         static_cast<double>(0.7f), dd.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(df, dd, kRel, kAbs));

  const auto bf = random_vector<float>(n, 43, 0, 1);
  const auto bd = convert<double>(bf);
  binary_cross_entropy_forward(static_cast<int64_t>(n), zf.data(), bf.data(), &lf);
  binary_cross_entropy_forward(static_cast<int64_t>(n), zd.data(), bd.data(), &ld);
  EXPECT_NEAR(lf, ld, kRel * ld);
  binary_cross_entropy_backward(static_cast<int64_t>(n), zf.data(), bf.data(), 0.7f, df.data(),
                                GradMode::Overwrite);
  binary_cross_entropy_backward(static_cast<int64_t>(n), zd.data(), bd.data(),
                                static_cast<double>(0.7f), dd.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(df, dd, kRel, kAbs));

  mse_forward(static_cast<int64_t>(n), zf.data(), bf.data(), &lf);
  mse_forward(static_cast<int64_t>(n), zd.data(), bd.data(), &ld);
  EXPECT_NEAR(lf, ld, kRel * ld);
  mse_backward(static_cast<int64_t>(n), zf.data(), bf.data(), 0.7f, df.data(), GradMode::Overwrite);
  mse_backward(static_cast<int64_t>(n), zd.data(), bd.data(), static_cast<double>(0.7f), dd.data(),
               GradMode::Overwrite);
  EXPECT_TRUE(all_close(df, dd, kRel, kAbs));
}

TEST(Losses, LargeBatchesTakeTheParallelPath) {
  // rows·classes and count above 2^15, so each backward's OpenMP branch runs; the result must
  // equal a serial evaluation of the same formula bit for bit (no reduction is involved).
  const int64_t rows = 4001, classes = 11, count = rows * classes;
  const auto z = random_vector(sz(count), 50, -3, 3);
  const auto labels = random_labels(rows, classes, 51);
  std::vector<double> probs(sz(count)), dz(sz(count)), expected(sz(count));
  double loss = kNaN;
  softmax_cross_entropy_forward(rows, classes, z.data(), labels.data(), probs.data(), &loss);
  EXPECT_TRUE(std::isfinite(loss));
  poison(dz);
  softmax_cross_entropy_backward(rows, classes, probs.data(), labels.data(), 1.0, dz.data(),
                                 GradMode::Overwrite);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < classes; ++j)
      expected[sz(i * classes + j)] =
          (1.0 / rows) * (probs[sz(i * classes + j)] - (j == labels[sz(i)] ? 1.0 : 0.0));
  EXPECT_TRUE(all_close(dz, expected, 0.0, 0.0));

  const auto t = random_vector(sz(count), 52, 0, 1);
  poison(dz);
  mse_backward(count, z.data(), t.data(), 1.0, dz.data(), GradMode::Overwrite);
  for (size_t i = 0; i < z.size(); ++i)
    expected[i] = (2.0 / static_cast<double>(count)) * (z[i] - t[i]);
  EXPECT_TRUE(all_close(dz, expected, 0.0, 0.0));
  poison(dz);
  binary_cross_entropy_backward(count, z.data(), t.data(), 1.0, dz.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_finite(dz));
}

TEST(Losses, EmptyBatchGivesZeroLossAndWritesNothing) {
  double loss = kNaN;
  softmax_cross_entropy_forward<double>(0, kClasses, nullptr, nullptr, nullptr, &loss);
  EXPECT_EQ(loss, 0.0);
  loss = kNaN;
  softmax_cross_entropy_targets_forward<double>(0, kClasses, nullptr, nullptr, nullptr, &loss);
  EXPECT_EQ(loss, 0.0);
  loss = kNaN;
  binary_cross_entropy_forward<double>(0, nullptr, nullptr, &loss);
  EXPECT_EQ(loss, 0.0);
  loss = kNaN;
  mse_forward<double>(0, nullptr, nullptr, &loss);
  EXPECT_EQ(loss, 0.0);
  // Backward of an empty batch has no element to write and must not divide by zero.
  softmax_cross_entropy_backward<double>(0, kClasses, nullptr, nullptr, 1.0, nullptr,
                                         GradMode::Overwrite);
  softmax_cross_entropy_targets_backward<double>(0, kClasses, nullptr, nullptr, 1.0, nullptr,
                                                 GradMode::Overwrite);
  binary_cross_entropy_backward<double>(0, nullptr, nullptr, 1.0, nullptr, GradMode::Overwrite);
  mse_backward<double>(0, nullptr, nullptr, 1.0, nullptr, GradMode::Overwrite);
}

}  // namespace
}  // namespace polytask::kernels::cpu
