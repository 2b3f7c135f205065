// CPU elementwise ops: forward against naive loops on NaN-poisoned outputs, gradients against
// central differences in double, float against double, the Overwrite/Accumulate contract, and
// a size above the OpenMP threshold so the parallel branch runs too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cpu {
namespace {

using polytask::testing::all_close;
using polytask::testing::check_gradient;
using polytask::testing::dot;
using polytask::testing::poison;
using polytask::testing::random_vector;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kCount = 3 * 5 * 7;     // an odd (3, 5, 7) tensor
constexpr int64_t kLargeCount = 100'003;  // above the 2^15 OpenMP threshold, and odd

size_t sz(int64_t v) { return static_cast<size_t>(v); }

std::vector<double> plus(std::vector<double> a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

// Proves a backward adds on Accumulate and ignores old contents (even NaN) on Overwrite.
// `backward(dst, mode)` writes the gradient whose fresh value is `grad`.
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

template <class T>
class ElementwiseTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ElementwiseTyped, Scalars);

TYPED_TEST(ElementwiseTyped, ForwardOpsMatchNaiveLoops) {
  using T = TypeParam;
  for (const int64_t count : {kCount, kLargeCount}) {
    const auto a = random_vector<T>(sz(count), 1);
    const auto b = random_vector<T>(sz(count), 2);
    std::vector<T> y(sz(count)), expected(sz(count));

    poison(y);
    fill(count, T(0.25), y.data());
    EXPECT_TRUE(all_close(y, std::vector<T>(sz(count), T(0.25)), 0.0, 0.0)) << "fill " << count;

    poison(y);
    copy(count, a.data(), y.data());
    EXPECT_TRUE(all_close(y, a, 0.0, 0.0)) << "copy " << count;

    poison(y);
    relu_forward(count, a.data(), y.data());
    for (size_t i = 0; i < a.size(); ++i) expected[i] = a[i] > T(0) ? a[i] : T(0);
    EXPECT_TRUE(all_close(y, expected, 0.0, 0.0)) << "relu " << count;

    poison(y);
    add_forward(count, a.data(), b.data(), y.data());
    for (size_t i = 0; i < a.size(); ++i) expected[i] = a[i] + b[i];
    EXPECT_TRUE(all_close(y, expected, 0.0, 0.0)) << "add " << count;
  }
}

TYPED_TEST(ElementwiseTyped, ReluWorksInPlaceAndKeepsNaN) {
  using T = TypeParam;
  std::vector<T> v = {T(-2), T(-0.5), T(0), T(0.5), T(3), std::numeric_limits<T>::quiet_NaN()};
  relu_forward(static_cast<int64_t>(v.size()), v.data(), v.data());
  EXPECT_EQ(v[0], T(0));
  EXPECT_EQ(v[1], T(0));
  EXPECT_EQ(v[2], T(0));
  EXPECT_EQ(v[3], T(0.5));
  EXPECT_EQ(v[4], T(3));
  EXPECT_TRUE(std::isnan(v[5])) << "a diverging activation must stay visible";
}

TYPED_TEST(ElementwiseTyped, ReluBackwardIsZeroWhereOutputIsZero) {
  using T = TypeParam;
  const std::vector<T> y = {T(0), T(0), T(2), T(1e-30)};
  const std::vector<T> dy = {T(5), T(-5), T(7), T(11)};
  std::vector<T> dx(y.size());
  poison(dx);
  relu_backward(static_cast<int64_t>(y.size()), y.data(), dy.data(), dx.data(),
                GradMode::Overwrite);
  EXPECT_TRUE(all_close(dx, std::vector<T>{T(0), T(0), T(7), T(11)}, 0.0, 0.0));
}

// Every op here is linear (or piecewise linear) in its input, so central differences are exact
// up to ~1e-16·|f|/1e-6 rounding; the defaults (rel 1e-6, abs 1e-8) leave wide margin.
TEST(Elementwise, ReluGradientMatchesCentralDifferences) {
  auto x = random_vector(sz(kCount), 10);
  const auto r = random_vector(sz(kCount), 11);
  std::vector<double> y(x.size());
  const auto objective = [&] {
    relu_forward(kCount, x.data(), y.data());
    return dot(y, r);
  };
  objective();
  std::vector<double> dx(x.size());
  poison(dx);
  relu_backward(kCount, y.data(), r.data(), dx.data(), GradMode::Overwrite);
  EXPECT_TRUE(check_gradient("relu dx", x, dx, objective));
}

TEST(Elementwise, AddAndScaleGradientsMatchCentralDifferences) {
  auto a = random_vector(sz(kCount), 20);
  auto b = random_vector(sz(kCount), 21);
  const auto r = random_vector(sz(kCount), 22);
  std::vector<double> y(a.size());
  const auto add_objective = [&] {
    add_forward(kCount, a.data(), b.data(), y.data());
    return dot(y, r);
  };
  // The engine routes the add's gradient to both inputs with scale_grad(1, ...).
  std::vector<double> da(a.size()), db(b.size());
  poison(da), poison(db);
  scale_grad(kCount, 1.0, r.data(), da.data(), GradMode::Overwrite);
  scale_grad(kCount, 1.0, r.data(), db.data(), GradMode::Overwrite);
  EXPECT_TRUE(check_gradient("add da", a, da, add_objective));
  EXPECT_TRUE(check_gradient("add db", b, db, add_objective));

  constexpr double kScale = -0.37;
  const auto scale_objective = [&] {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += kScale * a[i] * r[i];
    return s;
  };
  std::vector<double> dscaled(a.size());
  poison(dscaled);
  scale_grad(kCount, kScale, r.data(), dscaled.data(), GradMode::Overwrite);
  EXPECT_TRUE(check_gradient("scale dx", a, dscaled, scale_objective));
}

TEST(Elementwise, BackwardsHonourOverwriteAndAccumulate) {
  for (const int64_t count : {kCount, kLargeCount}) {
    const auto x = random_vector(sz(count), 30);
    const auto dy = random_vector(sz(count), 31);
    std::vector<double> y(x.size());
    relu_forward(count, x.data(), y.data());

    std::vector<double> relu_grad(x.size());
    for (size_t i = 0; i < x.size(); ++i) relu_grad[i] = y[i] > 0 ? dy[i] : 0.0;
    expect_accumulation_contract(relu_grad, [&](double* dx, GradMode mode) {
      relu_backward(count, y.data(), dy.data(), dx, mode);
    });

    std::vector<double> scaled(x.size());
    for (size_t i = 0; i < x.size(); ++i) scaled[i] = 1.75 * dy[i];
    expect_accumulation_contract(
        scaled, [&](double* dx, GradMode mode) { scale_grad(count, 1.75, dy.data(), dx, mode); });
  }
}

// Three parts with different widths, as when (N, 5), (N, 7) and (N, 2) features are joined.
struct ConcatCase {
  int64_t outer = 3;
  std::vector<int64_t> inner = {5, 7, 2};
  int64_t total() const { return inner[0] + inner[1] + inner[2]; }
};

TYPED_TEST(ElementwiseTyped, ConcatForwardMatchesNaiveLoops) {
  using T = TypeParam;
  const ConcatCase c;
  std::vector<std::vector<T>> parts;
  for (size_t p = 0; p < c.inner.size(); ++p)
    parts.push_back(random_vector<T>(sz(c.outer * c.inner[p]), 40 + p));
  const T* ptrs[] = {parts[0].data(), parts[1].data(), parts[2].data()};
  std::vector<T> y(sz(c.outer * c.total()));
  poison(y);
  concat_forward(c.outer, 3, c.inner.data(), ptrs, y.data());

  std::vector<T> expected;
  for (int64_t o = 0; o < c.outer; ++o)
    for (size_t p = 0; p < parts.size(); ++p)
      for (int64_t k = 0; k < c.inner[p]; ++k) expected.push_back(parts[p][sz(o * c.inner[p] + k)]);
  EXPECT_TRUE(all_close(y, expected, 0.0, 0.0));
}

TEST(Elementwise, ConcatGradientsMatchCentralDifferences) {
  const ConcatCase c;
  std::vector<std::vector<double>> parts;
  for (size_t p = 0; p < c.inner.size(); ++p)
    parts.push_back(random_vector(sz(c.outer * c.inner[p]), 50 + p));
  const auto r = random_vector(sz(c.outer * c.total()), 53);
  std::vector<double> y(r.size());
  const auto objective = [&] {
    const double* ptrs[] = {parts[0].data(), parts[1].data(), parts[2].data()};
    concat_forward(c.outer, 3, c.inner.data(), ptrs, y.data());
    return dot(y, r);
  };
  std::vector<std::vector<double>> grads;
  for (const auto& part : parts) grads.emplace_back(part.size(), kNaN);
  double* dptrs[] = {grads[0].data(), grads[1].data(), grads[2].data()};
  concat_backward(c.outer, 3, c.inner.data(), r.data(), dptrs, GradMode::Overwrite);
  for (size_t p = 0; p < parts.size(); ++p)
    EXPECT_TRUE(check_gradient("concat part " + std::to_string(p), parts[p], grads[p], objective));
}

TEST(Elementwise, ConcatBackwardSkipsNullPartsAndHonoursModes) {
  const ConcatCase c;
  const auto dy = random_vector(sz(c.outer * c.total()), 60);
  std::vector<std::vector<double>> slices(3);
  for (int64_t o = 0; o < c.outer; ++o) {
    int64_t offset = 0;
    for (size_t p = 0; p < 3; ++p) {
      for (int64_t k = 0; k < c.inner[p]; ++k)
        slices[p].push_back(dy[sz(o * c.total() + offset + k)]);
      offset += c.inner[p];
    }
  }
  // Part 1 needs no gradient: its pointer is null and the others must still get their slices.
  for (size_t target : {size_t{0}, size_t{2}}) {
    expect_accumulation_contract(slices[target], [&](double* d, GradMode mode) {
      std::vector<double> other(slices[2 - target].size(), 0.0);
      double* dptrs[3] = {nullptr, nullptr, nullptr};
      dptrs[target] = d;
      dptrs[2 - target] = other.data();
      concat_backward(c.outer, 3, c.inner.data(), dy.data(), dptrs, mode);
    });
  }
}

TEST(Elementwise, LargeConcatTakesTheParallelPath) {
  // outer · total above 2^15 so the OpenMP branch of both concat loops runs.
  const int64_t outer = 1001;
  const std::vector<int64_t> inner = {17, 3, 13};
  const int64_t total = 33;
  std::vector<std::vector<double>> parts;
  for (size_t p = 0; p < inner.size(); ++p)
    parts.push_back(random_vector(sz(outer * inner[p]), 70 + p));
  const double* ptrs[] = {parts[0].data(), parts[1].data(), parts[2].data()};
  std::vector<double> y(sz(outer * total));
  poison(y);
  concat_forward(outer, 3, inner.data(), ptrs, y.data());
  std::vector<std::vector<double>> back;
  for (const auto& part : parts) back.emplace_back(part.size(), kNaN);
  double* dptrs[] = {back[0].data(), back[1].data(), back[2].data()};
  concat_backward(outer, 3, inner.data(), y.data(), dptrs, GradMode::Overwrite);
  for (size_t p = 0; p < parts.size(); ++p)
    EXPECT_TRUE(all_close(back[p], parts[p], 0.0, 0.0)) << "round trip of part " << p;
}

TEST(Elementwise, FloatAgreesWithDouble) {
  // Same float-representable inputs in both runs. fill/copy/relu/add-of-two and concat are
  // exact or one rounding; scale_grad is one product: float round-off is ≤ 6e-8 relative.
  const auto af = random_vector<float>(sz(kCount), 80);
  const auto bf = random_vector<float>(sz(kCount), 81);
  std::vector<double> ad(af.begin(), af.end()), bd(bf.begin(), bf.end());
  std::vector<float> yf(af.size());
  std::vector<double> yd(ad.size());
  constexpr double kRel = 1.2e-7, kAbs = 0.0;

  add_forward(kCount, af.data(), bf.data(), yf.data());
  add_forward(kCount, ad.data(), bd.data(), yd.data());
  EXPECT_TRUE(all_close(yf, yd, kRel, kAbs)) << "add";

  scale_grad(kCount, 0.3f, af.data(), yf.data(), GradMode::Overwrite);
  scale_grad(kCount, static_cast<double>(0.3f), ad.data(), yd.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(yf, yd, kRel, kAbs)) << "scale_grad";

  relu_backward(kCount, af.data(), bf.data(), yf.data(), GradMode::Overwrite);
  relu_backward(kCount, ad.data(), bd.data(), yd.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(yf, yd, 0.0, 0.0)) << "relu_backward selects, never rounds";
}

TEST(Elementwise, EmptyCountsTouchNothing) {
  fill<double>(0, 1.0, nullptr);
  copy<double>(0, nullptr, nullptr);
  relu_forward<double>(0, nullptr, nullptr);
  relu_backward<double>(0, nullptr, nullptr, nullptr, GradMode::Overwrite);
  add_forward<double>(0, nullptr, nullptr, nullptr);
  scale_grad<double>(0, 2.0, nullptr, nullptr, GradMode::Accumulate);
  const int64_t inner[] = {4, 5};
  concat_forward<double>(0, 2, inner, nullptr, nullptr);
  concat_backward<double>(0, 2, inner, nullptr, nullptr, GradMode::Overwrite);
  SUCCEED();
}

}  // namespace
}  // namespace polytask::kernels::cpu
