#include <gtest/gtest.h>

#include <cmath>

#include "watch/ticks.h"

namespace polytask::watch {
namespace {

// Every step between ticks is 1, 2 or 5 times a power of ten.
void expect_round_steps(const Axis& axis) {
  ASSERT_GE(axis.ticks.size(), 2u);
  const double step = axis.ticks[1] - axis.ticks[0];
  const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
  EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 ||
              std::abs(mantissa - 5) < 1e-6)
      << step;
}

TEST(Ticks, ValueAxisCoversTheDataWithRoundTicks) {
  const Axis axis = value_axis(0.0033, 0.04);
  EXPECT_LE(axis.lo, 0.0033);
  EXPECT_GE(axis.hi, 0.04);
  EXPECT_EQ(axis.lo, 0.0);  // no negative range for values >= 0
  expect_round_steps(axis);
  EXPECT_GE(axis.ticks.size(), 3u);
  EXPECT_LE(axis.ticks.size(), 11u);
  EXPECT_EQ(tick_label(0.02, axis), "0.02");
  EXPECT_EQ(tick_label(0.0, axis), "0.00");
}

TEST(Ticks, FractionsEndAtOne) {
  const Axis axis = value_axis(0.7, 0.985);
  EXPECT_EQ(axis.hi, 1.0);
  EXPECT_LE(axis.lo, 0.7);
  expect_round_steps(axis);
}

TEST(Ticks, NegativeAndFlatValues) {
  const Axis negative = value_axis(-0.3, 0.2);
  EXPECT_LT(negative.lo, -0.3);
  EXPECT_GT(negative.hi, 0.2);
  expect_round_steps(negative);
  for (double t : negative.ticks) EXPECT_NE(tick_label(t, negative), "-0.0");
  const Axis flat = value_axis(0.3, 0.3);
  EXPECT_LT(flat.lo, 0.3);
  EXPECT_GT(flat.hi, 0.3);
  const Axis zero = value_axis(0, 0);
  EXPECT_LT(zero.lo, zero.hi);
}

TEST(Ticks, EpochAxisHasIntegerTicksOfExistingEpochs) {
  const Axis one = epoch_axis(1, 1);
  EXPECT_EQ(one.ticks, std::vector<double>{1});
  EXPECT_LT(one.lo, 1);
  EXPECT_GT(one.hi, 1);
  const Axis few = epoch_axis(1, 3);
  EXPECT_EQ(few.ticks, (std::vector<double>{1, 2, 3}));
  const Axis many = epoch_axis(1, 60);
  for (double t : many.ticks) {
    EXPECT_EQ(t, std::round(t));
    EXPECT_GE(t, 1);
    EXPECT_LE(t, 60);
  }
  EXPECT_EQ(many.ticks.front(), 1);
  EXPECT_EQ(tick_label(20, many), "20");
  EXPECT_EQ(epoch_axis(31, 60).ticks.front(), 31);
}

TEST(Ticks, LargeNumbersInShortForm) {
  const Axis axis = value_axis(1e6, 5e6);
  EXPECT_EQ(tick_label(2e6, axis), "2e+06");
}

}  // namespace
}  // namespace polytask::watch
