// The synthetic sets: seeded (bit-identical for a seed, different across seeds), shaped as
// documented, and learnable: the labels follow from the inputs by the documented rule.
#include "datasets/synthetic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/datasets/dataset_fixtures.h"

namespace polytask::testing {
namespace {

using datasets::synthetic_digits;
using datasets::synthetic_rgb;
using datasets::synthetic_two_input;

void expect_same(const Dataset& a, const Dataset& b) {
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  ASSERT_EQ(a.targets.size(), b.targets.size());
  for (size_t i = 0; i < a.inputs.size(); ++i)
    EXPECT_EQ(a.inputs[i].tensor.to_vector<float>(), b.inputs[i].tensor.to_vector<float>());
  for (size_t i = 0; i < a.targets.size(); ++i) {
    const Tensor& t = a.targets[i].tensor;
    if (t.dtype() == DType::I32)
      EXPECT_EQ(t.to_vector<int32_t>(), b.targets[i].tensor.to_vector<int32_t>());
    else
      EXPECT_EQ(t.to_vector<float>(), b.targets[i].tensor.to_vector<float>());
  }
}

bool in_unit_range(const Tensor& t) {
  const auto v = t.to_vector<float>();
  return std::all_of(v.begin(), v.end(), [](float x) { return x >= 0.0f && x <= 1.0f; });
}

TEST(SyntheticDigits, ShapesFieldsAndSeeds) {
  const Dataset d = synthetic_digits(50, 3);
  ASSERT_EQ(d.inputs.size(), 1u);
  ASSERT_EQ(d.targets.size(), 1u);
  EXPECT_EQ(d.input("image").shape(), (Shape{50, 1, 28, 28}));
  EXPECT_EQ(d.targets[0].name, "class");
  const auto cls = d.target("class").to_vector<int32_t>();
  EXPECT_TRUE(std::all_of(cls.begin(), cls.end(), [](int32_t c) { return c >= 0 && c < 10; }));
  EXPECT_TRUE(in_unit_range(d.input("image")));
  expect_same(d, synthetic_digits(50, 3));
  EXPECT_NE(d.input("image").to_vector<float>(), synthetic_digits(50, 4).input("image").to_vector<float>());
  EXPECT_THROW(synthetic_digits(0, 1), Error);
}

TEST(SyntheticRgb, ShapesFieldsAndSeeds) {
  const Dataset d = synthetic_rgb(40, 5);
  EXPECT_EQ(d.input("image").shape(), (Shape{40, 3, 28, 28}));
  EXPECT_EQ(d.target("class").shape(), (Shape{40}));
  EXPECT_EQ(d.target("class").dtype(), DType::I32);
  EXPECT_EQ(d.target("value").shape(), (Shape{40, 1}));
  EXPECT_EQ(d.target("value").dtype(), DType::F32);
  EXPECT_TRUE(in_unit_range(d.input("image")));
  expect_same(d, synthetic_rgb(40, 5));
  EXPECT_NE(d.input("image").to_vector<float>(), synthetic_rgb(40, 6).input("image").to_vector<float>());
  EXPECT_THROW(synthetic_rgb(-1, 1), Error);
}

TEST(SyntheticRgb, DominantChannelIsTheClassAndValueFollowsMeanPixel) {
  const int64_t n = 600;
  const Dataset d = synthetic_rgb(n, 11);
  const auto px = d.input("image").to_vector<float>();
  const auto cls = d.target("class").to_vector<int32_t>();
  const auto value = d.target("value").to_vector<float>();
  int correct = 0;
  std::vector<int> per_class(3, 0);
  double worst_gap = 0;
  for (int64_t i = 0; i < n; ++i) {
    double channel[3] = {0, 0, 0};
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 784; ++p) channel[c] += px[size_t((i * 3 + c) * 784 + p)];
    const int brightest = int(std::max_element(channel, channel + 3) - channel);
    correct += brightest == cls[size_t(i)];
    ++per_class[size_t(cls[size_t(i)])];
    const double mean = (channel[0] + channel[1] + channel[2]) / (3 * 784);
    worst_gap = std::max(worst_gap, std::abs(value[size_t(i)] - 0.5 * mean));
  }
  // The documented rule, read off with no learning at all: the brightest channel is the class.
  EXPECT_GT(correct, int(0.97 * double(n)));
  for (int c = 0; c < 3; ++c) EXPECT_GT(per_class[size_t(c)], n / 5) << "class " << c;
  // Noise N(0, 0.02): 600 draws stay within 5 sigma.
  EXPECT_LT(worst_gap, 0.1);
  const auto [lo, hi] = std::minmax_element(value.begin(), value.end());
  EXPECT_GT(*hi - *lo, 0.15) << "the value must vary for the regression head to learn anything";
}

TEST(SyntheticTwoInput, ShapesFieldsAndSeeds) {
  const Dataset d = synthetic_two_input(30, 2);
  ASSERT_EQ(d.inputs.size(), 2u);
  EXPECT_EQ(d.input("a").shape(), (Shape{30, 50}));
  EXPECT_EQ(d.input("b").shape(), (Shape{30, 100}));
  EXPECT_EQ(d.target("class").shape(), (Shape{30}));
  EXPECT_EQ(d.target("value").shape(), (Shape{30, 1}));
  expect_same(d, synthetic_two_input(30, 2));
  EXPECT_NE(d.input("b").to_vector<float>(), synthetic_two_input(30, 3).input("b").to_vector<float>());
}

// Nearest class mean on [a, b], fitted on one seed and scored on another: far above the 10 %
// of chance, because the label is a fixed linear function of both inputs.
TEST(SyntheticTwoInput, ClassesAreLearnableAcrossSeeds) {
  const Dataset train = synthetic_two_input(4000, 1), test = synthetic_two_input(1000, 2);
  const auto features = [](const Dataset& d, int64_t i) {
    std::vector<double> x;
    const float* a = d.input("a").data<float>() + i * 50;
    const float* b = d.input("b").data<float>() + i * 100;
    x.insert(x.end(), a, a + 50);
    x.insert(x.end(), b, b + 100);
    return x;
  };
  std::vector<std::vector<double>> mean(10, std::vector<double>(150, 0.0));
  std::vector<int> count(10, 0);
  const auto cls = train.target("class").to_vector<int32_t>();
  for (int64_t i = 0; i < train.size(); ++i) {
    const auto x = features(train, i);
    const auto c = size_t(cls[size_t(i)]);
    ++count[c];
    for (size_t j = 0; j < 150; ++j) mean[c][j] += x[j];
  }
  for (size_t c = 0; c < 10; ++c) {
    ASSERT_GT(count[c], 100) << "class " << c << " is too rare";
    for (auto& m : mean[c]) m /= count[c];
  }
  const auto test_cls = test.target("class").to_vector<int32_t>();
  int correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    const auto x = features(test, i);
    double best = 1e300;
    int guess = 0;
    for (int c = 0; c < 10; ++c) {
      double dist = 0;
      for (size_t j = 0; j < 150; ++j) dist += (x[j] - mean[size_t(c)][j]) * (x[j] - mean[size_t(c)][j]);
      if (dist < best) best = dist, guess = c;
    }
    correct += guess == test_cls[size_t(i)];
  }
  EXPECT_GT(correct, 400) << correct << " of 1000";
  // Both inputs matter: the class means differ in a and in b.
  double spread_a = 0, spread_b = 0;
  for (size_t j = 0; j < 150; ++j) (j < 50 ? spread_a : spread_b) += std::abs(mean[0][j] - mean[1][j]);
  EXPECT_GT(spread_a / 50, 0.05);
  EXPECT_GT(spread_b / 100, 0.05);
}

}  // namespace
}  // namespace polytask::testing
