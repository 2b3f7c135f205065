// CPU inverted dropout and the Philox generator behind its mask: Random123 known answers,
// reproducibility from (seed, stream), kept fraction, scaling, backward with the same mask,
// drawing from a first index (a slice of the whole draw), the accumulation contract and
// argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/dropout.h"
#include "kernels/error.h"
#include "kernels/philox.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels {
namespace {

using polytask::testing::check_gradient;
using polytask::testing::dot;
using polytask::testing::GradCheckOptions;
using polytask::testing::poison;
using polytask::testing::random_vector;

// Known-answer vectors of Philox4x32-10 from Random123's kat_vectors file.
struct PhiloxCase {
  uint32_t counter[4];
  uint32_t key[2];
  uint32_t expected[4];
};

TEST(Philox, MatchesRandom123KnownAnswers) {
  const PhiloxCase cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const PhiloxCase& c : cases) {
    const Philox4x32 r =
        philox4x32_10(c.counter[0], c.counter[1], c.counter[2], c.counter[3], c.key[0], c.key[1]);
    for (int w = 0; w < 4; ++w)
      EXPECT_EQ(r.v[w], c.expected[w])
          << "word " << w << " for counter " << std::hex << c.counter[0] << " key " << c.key[0];
  }
}

TEST(Philox, UniformIsInUnitIntervalAndUsesAllFourWords) {
  // Elements 4b..4b+3 share one block and take words 0..3 of it.
  const Philox4x32 r = philox4x32_10(5, 0, 9, 0, 123, 0);
  for (uint64_t w = 0; w < 4; ++w) {
    const float u = philox_uniform(123, 9, 20 + w);
    EXPECT_EQ(u, static_cast<float>(r.v[w] >> 8) / 16777216.0f);
    EXPECT_GE(u, 0.0f);
    EXPECT_LT(u, 1.0f);
  }
}

std::vector<bool> mask(int64_t count, float rate, uint64_t seed, uint64_t stream) {
  std::vector<float> x(static_cast<size_t>(count), 1.0f), y(static_cast<size_t>(count));
  cpu::dropout_forward<float>(count, rate, seed, stream, 0, x.data(), y.data());
  std::vector<bool> kept(y.size());
  for (size_t i = 0; i < y.size(); ++i) kept[i] = y[i] != 0.0f;
  return kept;
}

size_t differences(const std::vector<bool>& a, const std::vector<bool>& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i] ? 1 : 0;
  return n;
}

TEST(Dropout, MaskIsAPureFunctionOfSeedStreamAndIndex) {
  const int64_t count = 10000;
  const float rate = 0.5f;
  const auto base = mask(count, rate, 42, 7);
  EXPECT_EQ(base, mask(count, rate, 42, 7));
  for (size_t i = 0; i < base.size(); ++i)
    ASSERT_EQ(base[i], dropout_keeps(42, 7, i, rate)) << "element " << i;
  // Independent masks at rate 0.5 disagree on half the elements (sd 50); 4000 is 20 sd away.
  EXPECT_GT(differences(base, mask(count, rate, 42, 8)), 4000u);
  EXPECT_GT(differences(base, mask(count, rate, 43, 7)), 4000u);
  // The upper halves of seed and stream take part too (the engine packs layer and step).
  EXPECT_GT(differences(base, mask(count, rate, 42, 7 + (uint64_t{1} << 32))), 4000u);
  EXPECT_GT(differences(base, mask(count, rate, 42 + (uint64_t{1} << 32), 7)), 4000u);
}

TEST(Dropout, KeptFractionIsCloseToOneMinusRate) {
  const int64_t count = 1000000;
  for (const float rate : {0.1f, 0.3f, 0.5f, 0.9f}) {
    const auto kept = mask(count, rate, 2024, 3);
    size_t n = 0;
    for (bool k : kept) n += k ? 1 : 0;
    // Kept count ~ Binomial(1e6, 1 - rate): sd = sqrt(1e6·p·(1-p)) <= 500, i.e. 5e-4 in the
    // fraction; 6 sd (3e-3) fails an unbiased generator with probability < 2e-9.
    const double p = 1.0 - static_cast<double>(rate);
    const double sd = std::sqrt(p * (1 - p) / static_cast<double>(count));
    EXPECT_NEAR(static_cast<double>(n) / static_cast<double>(count), p, 6 * sd) << "rate " << rate;
  }
}

template <class T>
class DropoutTyped : public ::testing::Test {};
using ScalarTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(DropoutTyped, ScalarTypes);

// One rounding of x·(1/(1-rate)) or x/(1-rate) is within 1 ulp of the exact product plus the
// rounding of the scale: 2 ulps relative.
template <class T>
constexpr double kScaleTol = 2.0 * std::numeric_limits<T>::epsilon();

TYPED_TEST(DropoutTyped, KeptValuesAreScaledAndDroppedAreZero) {
  using T = TypeParam;
  const int64_t count = 5000;
  const float rate = 0.25f;
  const auto xd = random_vector(static_cast<size_t>(count), 1, 0.5, 2.0);  // never 0
  const std::vector<T> x(xd.begin(), xd.end());
  std::vector<T> y(x.size());
  poison(y);
  cpu::dropout_forward<T>(count, rate, 9, 1, 0, x.data(), y.data());
  size_t kept = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (dropout_keeps(9, 1, i, rate)) {
      ++kept;
      const double expected = static_cast<double>(x[i]) / (1.0 - static_cast<double>(rate));
      EXPECT_NEAR(static_cast<double>(y[i]), expected, kScaleTol<T> * expected) << "element " << i;
    } else {
      EXPECT_EQ(y[i], T(0)) << "element " << i;
    }
  }
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, x.size());
}

TYPED_TEST(DropoutTyped, InPlaceMatchesOutOfPlace) {
  using T = TypeParam;
  const int64_t count = 1001;  // not a multiple of the 4-element Philox block
  const auto xd = random_vector(static_cast<size_t>(count), 2);
  std::vector<T> x(xd.begin(), xd.end()), y(x.size());
  cpu::dropout_forward<T>(count, 0.4f, 5, 6, 0, x.data(), y.data());
  cpu::dropout_forward<T>(count, 0.4f, 5, 6, 0, x.data(), x.data());
  EXPECT_EQ(x, y);
}

TYPED_TEST(DropoutTyped, BackwardUsesTheForwardMask) {
  using T = TypeParam;
  const int64_t count = 3000;
  const float rate = 0.6f;
  const auto dyd = random_vector(static_cast<size_t>(count), 3, 0.5, 2.0);
  const std::vector<T> dy(dyd.begin(), dyd.end()), ones(dy.size(), T(1));
  std::vector<T> y(dy.size()), dx(dy.size());
  poison(dx);
  cpu::dropout_forward<T>(count, rate, 77, 88, 0, ones.data(), y.data());
  cpu::dropout_backward<T>(count, rate, 77, 88, 0, dy.data(), dx.data(), GradMode::Overwrite);
  for (size_t i = 0; i < dy.size(); ++i) {
    // With x = 1, y is the forward's own scale (or 0): dx must be dy times the same factor.
    EXPECT_EQ(dx[i] == T(0), y[i] == T(0)) << "element " << i;
    const double expected = static_cast<double>(dy[i]) * static_cast<double>(y[i]);
    EXPECT_NEAR(static_cast<double>(dx[i]), expected, kScaleTol<T> * std::abs(expected))
        << "element " << i;
  }
}

// The kernels draw a Philox block once for its four elements; every element must still get
// dropout_keeps(seed, stream, i, rate), with one rounding of x·scale, for counts that end
// inside a block and for one large enough to run on several threads, forward and both
// backward modes.
TYPED_TEST(DropoutTyped, EveryCountFollowsThePerElementMask) {
  using T = TypeParam;
  const float rate = 0.3f;
  const T scale = static_cast<T>(1.0 / (1.0 - static_cast<double>(rate)));
  for (const int64_t count : {1, 2, 3, 4, 5, 6, 7, 9, 1001, 70001}) {
    SCOPED_TRACE(count);
    const auto xd = random_vector(static_cast<size_t>(count), 4);
    const auto seedd = random_vector(static_cast<size_t>(count), 5);
    const std::vector<T> x(xd.begin(), xd.end()), seed(seedd.begin(), seedd.end());
    std::vector<T> y(x.size()), dx(x.size()), acc = seed;
    poison(y);
    poison(dx);
    cpu::dropout_forward<T>(count, rate, 11, 12, 0, x.data(), y.data());
    cpu::dropout_backward<T>(count, rate, 11, 12, 0, x.data(), dx.data(), GradMode::Overwrite);
    cpu::dropout_backward<T>(count, rate, 11, 12, 0, x.data(), acc.data(), GradMode::Accumulate);
    for (size_t i = 0; i < x.size(); ++i) {
      const T want = dropout_keeps(11, 12, i, rate) ? x[i] * scale : T(0);
      ASSERT_EQ(y[i], want) << "forward, element " << i;
      ASSERT_EQ(dx[i], want) << "backward, element " << i;
      ASSERT_EQ(acc[i], seed[i] + want) << "accumulate, element " << i;
    }
  }
}

// Data-parallel ranks draw by global element: count elements from first_index k are elements
// [k, k + count) of one draw of k + count elements from 0 — forward and both backward modes,
// for k inside a Philox block (k mod 4 = 1, 2, 3) and on one (4, 568), counts that end inside a
// block and one large enough to run on several threads.
TYPED_TEST(DropoutTyped, FirstIndexDrawsASliceOfTheWholeDraw) {
  using T = TypeParam;
  const float rate = 0.45f;
  for (const int64_t k : {1, 2, 3, 4, 7, 565, 568})
    for (const int64_t count : {1, 2, 3, 5, 6, 7, 1001, 70001}) {
      SCOPED_TRACE(::testing::Message() << "first_index " << k << " count " << count);
      const int64_t whole = k + count;
      const auto xd = random_vector(static_cast<size_t>(whole), 21);
      const auto seedd = random_vector(static_cast<size_t>(whole), 22);
      const std::vector<T> x(xd.begin(), xd.end()), seed(seedd.begin(), seedd.end());
      std::vector<T> y(x.size()), dx(x.size()), acc = seed;
      cpu::dropout_forward<T>(whole, rate, 31, 32, 0, x.data(), y.data());
      cpu::dropout_backward<T>(whole, rate, 31, 32, 0, x.data(), dx.data(), GradMode::Overwrite);
      cpu::dropout_backward<T>(whole, rate, 31, 32, 0, x.data(), acc.data(), GradMode::Accumulate);
      const auto part = [&](const std::vector<T>& v) {
        return std::vector<T>(v.begin() + k, v.end());
      };
      std::vector<T> y_part(static_cast<size_t>(count)), dx_part(y_part.size()),
          acc_part = part(seed);
      poison(y_part);
      poison(dx_part);
      const uint64_t first = static_cast<uint64_t>(k);
      cpu::dropout_forward<T>(count, rate, 31, 32, first, x.data() + k, y_part.data());
      cpu::dropout_backward<T>(count, rate, 31, 32, first, x.data() + k, dx_part.data(),
                               GradMode::Overwrite);
      cpu::dropout_backward<T>(count, rate, 31, 32, first, x.data() + k, acc_part.data(),
                               GradMode::Accumulate);
      ASSERT_EQ(y_part, part(y)) << "forward";
      ASSERT_EQ(dx_part, part(dx)) << "backward, overwrite";
      ASSERT_EQ(acc_part, part(acc)) << "backward, accumulate";
    }
}

// Element i draws Philox index first_index + i, with the high words of the block counter in
// play and the sum wrapping modulo 2^64.
TEST(Dropout, FirstIndexFollowsThePerElementMaskAndWraps) {
  const float rate = 0.5f;
  const int64_t count = 11;
  const std::vector<double> x(static_cast<size_t>(count), 1.0);
  for (const uint64_t first : {(uint64_t{1} << 34) + 3, ~uint64_t{0} - 6, ~uint64_t{0}}) {
    std::vector<double> y(x.size()), dx(x.size());
    poison(y);
    poison(dx);
    cpu::dropout_forward<double>(count, rate, 5, 9, first, x.data(), y.data());
    cpu::dropout_backward<double>(count, rate, 5, 9, first, x.data(), dx.data(),
                                  GradMode::Overwrite);
    for (size_t i = 0; i < x.size(); ++i) {
      const bool keep = dropout_keeps(5, 9, first + i, rate);  // unsigned: wraps
      EXPECT_EQ(y[i], keep ? 2.0 : 0.0) << "first_index " << first << " element " << i;
      EXPECT_EQ(dx[i], y[i]) << "first_index " << first << " element " << i;
    }
  }
}

// The layer is linear in x, so central differences of dot(y, r) are exact up to round-off.
TEST(Dropout, BackwardMatchesFiniteDifferences) {
  const int64_t count = 257;
  const float rate = 0.3f;
  auto x = random_vector(static_cast<size_t>(count), 4);
  const auto r = random_vector(static_cast<size_t>(count), 5);
  std::vector<double> y(x.size()), dx(x.size());
  cpu::dropout_backward<double>(count, rate, 1, 2, 0, r.data(), dx.data(), GradMode::Overwrite);
  auto objective = [&] {
    cpu::dropout_forward<double>(count, rate, 1, 2, 0, x.data(), y.data());
    return dot(y, r);
  };
  // Round-off ≈ 1e-16·|objective| (≈ 1e2) / h (1e-6) = 1e-8; no truncation error.
  GradCheckOptions opt;
  opt.rel_tol = 1e-6;
  opt.abs_tol = 1e-7;
  EXPECT_TRUE(check_gradient("dx", x, dx, objective, opt));
}

TEST(Dropout, FloatAndDoubleShareTheMask) {
  const int64_t count = 2000;
  const std::vector<float> xf(static_cast<size_t>(count), 1.0f);
  const std::vector<double> xd(static_cast<size_t>(count), 1.0);
  std::vector<float> yf(xf.size());
  std::vector<double> yd(xd.size());
  cpu::dropout_forward<float>(count, 0.5f, 10, 20, 0, xf.data(), yf.data());
  cpu::dropout_forward<double>(count, 0.5f, 10, 20, 0, xd.data(), yd.data());
  for (size_t i = 0; i < yf.size(); ++i) EXPECT_EQ(yf[i] == 0.0f, yd[i] == 0.0) << "element " << i;
}

TEST(Dropout, RateZeroIsTheIdentity) {
  const int64_t count = 100;
  const auto x = random_vector(static_cast<size_t>(count), 6);
  std::vector<double> y(x.size()), dx(x.size());
  poison(y);
  poison(dx);
  cpu::dropout_forward<double>(count, 0.0f, 1, 1, 0, x.data(), y.data());
  cpu::dropout_backward<double>(count, 0.0f, 1, 1, 0, x.data(), dx.data(), GradMode::Overwrite);
  EXPECT_EQ(y, x);
  EXPECT_EQ(dx, x);
  // The identity shortcut must honour the accumulation contract like the general path.
  auto accumulated = x;
  cpu::dropout_backward<double>(count, 0.0f, 1, 1, 0, x.data(), accumulated.data(),
                                GradMode::Accumulate);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(accumulated[i], x[i] + x[i]) << "element " << i;
}

TEST(Dropout, AccumulateAddsAndOverwriteReplacesNaN) {
  const int64_t count = 500;
  const float rate = 0.5f;
  const auto dy = random_vector(static_cast<size_t>(count), 7);
  const auto seed = random_vector(static_cast<size_t>(count), 8);
  std::vector<double> fresh(dy.size());
  poison(fresh);
  cpu::dropout_backward<double>(count, rate, 3, 4, 0, dy.data(), fresh.data(), GradMode::Overwrite);
  for (size_t i = 0; i < fresh.size(); ++i) ASSERT_FALSE(std::isnan(fresh[i])) << "element " << i;

  auto accumulated = seed;
  cpu::dropout_backward<double>(count, rate, 3, 4, 0, dy.data(), accumulated.data(),
                                GradMode::Accumulate);
  std::vector<double> expected(dy.size());
  for (size_t i = 0; i < dy.size(); ++i) expected[i] = seed[i] + fresh[i];
  // Bit-equal: the kernel performs exactly this one addition per element.
  EXPECT_EQ(accumulated, expected);

  // Dropped elements too must be overwritten with 0 rather than keeping the seed.
  auto overwritten = seed;
  cpu::dropout_backward<double>(count, rate, 3, 4, 0, dy.data(), overwritten.data(),
                                GradMode::Overwrite);
  EXPECT_EQ(overwritten, fresh);
}

TEST(Dropout, RateOutsideUnitIntervalThrows) {
  std::vector<float> x(8, 1.0f), y(8);
  for (const float rate : {-0.1f, 1.0f, 1.5f, std::numeric_limits<float>::quiet_NaN()}) {
    EXPECT_THROW(cpu::dropout_forward<float>(8, rate, 0, 0, 0, x.data(), y.data()), polytask::Error)
        << "rate " << rate;
    EXPECT_THROW(
        cpu::dropout_backward<float>(8, rate, 0, 0, 0, x.data(), y.data(), GradMode::Overwrite),
        polytask::Error)
        << "rate " << rate;
  }
}

}  // namespace
}  // namespace polytask::kernels
