// CPU metrics on hand-made cases (ties, NaN, thresholds, out-of-range labels) and on a batch
// large enough for the OpenMP branch, checked against a naive count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/metrics.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cpu {
namespace {

using polytask::testing::random_vector;

template <class T>
class MetricsTyped : public ::testing::Test {
 protected:
  static constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(MetricsTyped, Scalars);

TYPED_TEST(MetricsTyped, CountCorrectPicksTheFirstOfTiedMaxima) {
  using T = TypeParam;
  const T nan = TestFixture::kNaN;
  // (6, 3) scores; comments give the argmax under numpy's first-maximum rule.
  const std::vector<T> scores = {
      1,  3,   3,   // tie between 1 and 2 -> 1
      1,  3,   3,   // same scores, label 2 -> wrong
      -5, -2,  -9,  // all negative -> 1
      0,  nan, 4,   // NaN anywhere -> wrong even though 2 holds the largest number
      7,  7,   7,   // all tied -> 0
      2,  1,   0,   // label 3 is out of range -> wrong, and no throw
  };
  const std::vector<int32_t> labels = {1, 2, 1, 2, 0, 3};
  EXPECT_EQ(count_correct<T>(6, 3, scores.data(), labels.data()), 3);
  EXPECT_EQ(count_correct<T>(0, 3, nullptr, nullptr), 0);
}

TYPED_TEST(MetricsTyped, CountCorrectTargetsUsesTheArgmaxOfEachTargetRow) {
  using T = TypeParam;
  const T nan = TestFixture::kNaN;
  const std::vector<T> scores = {
      1,   3,   3,    // predicts 1
      1,   3,   3,    // predicts 1
      0.2, 0.1, 0.7,  // predicts 2
      nan, 0,   0,    // no prediction
      0,   0,   1,    // predicts 2
  };
  const std::vector<T> targets = {
      0,   1,   0,    // one-hot 1 -> correct
      0,   0,   1,    // one-hot 2 -> wrong
      0.1, 0.3, 0.6,  // soft, argmax 2 -> correct
      1,   0,   0,    // scores hold NaN -> wrong
      0.5, 0,   0.5,  // tied soft target -> label 0 -> wrong
  };
  EXPECT_EQ(count_correct_targets<T>(5, 3, scores.data(), targets.data()), 2);
}

TYPED_TEST(MetricsTyped, CountCorrectBinaryThresholdsAtLogitZero) {
  using T = TypeParam;
  const T nan = TestFixture::kNaN;
  const std::vector<T> logits = {2, -1, 0, 0, nan, nan, T(0.5), T(-1e-30)};
  const std::vector<T> targets = {1, 0, 0, 1, 0, 1, 0, 0};
  // 2>0 vs 1 ✓; -1 vs 0 ✓; logit 0 predicts 0 ✓ / ✗; NaN ✗ ✗; 0.5 vs 0 ✗; -1e-30 vs 0 ✓.
  EXPECT_EQ(count_correct_binary<T>(8, logits.data(), targets.data()), 4);
}

TYPED_TEST(MetricsTyped, SumAbsErrorAccumulatesAndPropagatesNaN) {
  using T = TypeParam;
  const std::vector<T> pred = {1, -2, T(0.5), 3};
  const std::vector<T> target = {0, 2, T(0.75), 3};
  EXPECT_DOUBLE_EQ(sum_abs_error<T>(4, pred.data(), target.data()), 1 + 4 + 0.25 + 0);
  EXPECT_EQ(sum_abs_error<T>(0, nullptr, nullptr), 0.0);
  const std::vector<T> bad = {1, TestFixture::kNaN};
  EXPECT_TRUE(std::isnan(sum_abs_error<T>(2, bad.data(), target.data())))
      << "a NaN prediction must show in the reported error";
}

TYPED_TEST(MetricsTyped, LargeBatchMatchesNaiveCount) {
  using T = TypeParam;
  // rows·classes above 2^15, so the OpenMP reduction branch runs; integer sums are exact.
  const int64_t rows = 5003, classes = 7;
  const auto scores = random_vector<T>(static_cast<size_t>(rows * classes), 1);
  const auto u = random_vector(static_cast<size_t>(rows), 2, 0.0, static_cast<double>(classes));
  std::vector<int32_t> labels(u.size());
  for (size_t i = 0; i < u.size(); ++i) labels[i] = static_cast<int32_t>(u[i]);
  std::vector<T> onehot(scores.size(), T(0));
  for (int64_t i = 0; i < rows; ++i)
    onehot[static_cast<size_t>(i * classes + labels[static_cast<size_t>(i)])] = T(1);

  int64_t expected = 0;
  for (int64_t i = 0; i < rows; ++i) {
    int64_t best = 0;
    for (int64_t j = 1; j < classes; ++j)
      if (scores[static_cast<size_t>(i * classes + j)] >
          scores[static_cast<size_t>(i * classes + best)])
        best = j;
    if (best == labels[static_cast<size_t>(i)]) ++expected;
  }
  EXPECT_EQ(count_correct<T>(rows, classes, scores.data(), labels.data()), expected);
  EXPECT_EQ(count_correct_targets<T>(rows, classes, scores.data(), onehot.data()), expected);

  const int64_t count = rows * classes;
  const auto bits = random_vector<T>(static_cast<size_t>(count), 3, 0.0, 1.0);
  std::vector<T> binary_targets(bits.size());
  int64_t expected_binary = 0;
  for (size_t i = 0; i < bits.size(); ++i) {
    binary_targets[i] = bits[i] > T(0.5) ? T(1) : T(0);
    if ((scores[i] > T(0)) == (binary_targets[i] == T(1))) ++expected_binary;
  }
  EXPECT_EQ(count_correct_binary<T>(count, scores.data(), binary_targets.data()), expected_binary);
}

}  // namespace
}  // namespace polytask::kernels::cpu
