// CPU max pooling: forward against a direct loop, ties and NaN, backward against central
// differences, float against double, the Overwrite/Accumulate contract, and output sizes.
#include "kernels/pool2d.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/error.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels {
namespace {

using polytask::testing::all_close;
using polytask::testing::check_gradient;
using polytask::testing::dot;
using polytask::testing::poison;
using polytask::testing::random_vector;

struct Geometry {
  int64_t n, c, h, w, k_h, k_w, stride_h, stride_w;
};

std::string describe(const Geometry& g) {
  return cat("N", g.n, " C", g.c, " ", g.h, "x", g.w, " window ", g.k_h, "x", g.k_w, " stride ",
             g.stride_h, "x", g.stride_w);
}

MaxPool2dShape shape_of(const Geometry& g) {
  return max_pool2d_shape(g.n, g.c, g.h, g.w, g.k_h, g.k_w, g.stride_h, g.stride_w);
}

// The Keras default (2x2 / 2) on odd sizes that drop a row, overlapping windows (stride <
// window), gaps (stride > window), non-square windows and inputs.
const std::vector<Geometry> kGeometries = {
    {3, 5, 11, 11, 2, 2, 2, 2}, {2, 3, 13, 13, 3, 3, 2, 2}, {2, 2, 9, 7, 3, 3, 1, 1},
    {2, 3, 10, 11, 2, 2, 3, 3}, {3, 2, 9, 7, 3, 2, 2, 1},   {1, 4, 6, 6, 6, 6, 1, 1},
    {2, 2, 8, 5, 1, 1, 2, 1},
};

size_t in_size(const MaxPool2dShape& s) { return size_t(s.n * s.c * s.h_in * s.w_in); }
size_t out_size(const MaxPool2dShape& s) { return size_t(s.n * s.c * s.h_out * s.w_out); }

template <class T>
struct Pooled {
  std::vector<T> y;
  std::vector<int32_t> argmax;
};

template <class T>
Pooled<T> forward(const MaxPool2dShape& s, const std::vector<T>& x) {
  Pooled<T> out{std::vector<T>(out_size(s)), std::vector<int32_t>(out_size(s), -1)};
  poison(out.y);
  cpu::max_pool2d_forward(s, x.data(), out.y.data(), out.argmax.data());
  return out;
}

// Direct loop in double for inputs without ties or NaN.
Pooled<double> naive_forward(const MaxPool2dShape& s, const std::vector<double>& x) {
  Pooled<double> out{std::vector<double>(out_size(s)), std::vector<int32_t>(out_size(s))};
  for (int64_t p = 0; p < s.n * s.c; ++p)
    for (int64_t oh = 0; oh < s.h_out; ++oh)
      for (int64_t ow = 0; ow < s.w_out; ++ow) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t best_index = -1;
        for (int64_t i = 0; i < s.k_h; ++i)
          for (int64_t j = 0; j < s.k_w; ++j) {
            const int64_t index = (oh * s.stride_h + i) * s.w_in + ow * s.stride_w + j;
            const double v = x[size_t(p * s.h_in * s.w_in + index)];
            if (v > best) best = v, best_index = index;
          }
        const size_t o = size_t((p * s.h_out + oh) * s.w_out + ow);
        out.y[o] = best;
        out.argmax[o] = static_cast<int32_t>(best_index);
      }
  return out;
}

template <class T>
std::vector<T> backward(const MaxPool2dShape& s, const std::vector<T>& dy,
                        const std::vector<int32_t>& argmax, std::vector<T> dx, GradMode mode) {
  cpu::max_pool2d_backward(s, dy.data(), argmax.data(), dx.data(), mode);
  return dx;
}

TEST(MaxPool2dShape, OutputSizes) {
  EXPECT_EQ(max_pool2d_shape(1, 1, 28, 28, 2, 2, 2, 2).h_out, 14);
  const MaxPool2dShape s = max_pool2d_shape(1, 1, 13, 11, 2, 2, 2, 2);
  EXPECT_EQ(s.h_out, 6);  // the last row is dropped, as in Keras 'valid'
  EXPECT_EQ(s.w_out, 5);
  EXPECT_EQ(max_pool2d_shape(1, 1, 7, 7, 3, 3, 2, 2).h_out, 3);
  EXPECT_EQ(max_pool2d_shape(1, 1, 10, 10, 2, 2, 3, 3).h_out, 3);
  EXPECT_EQ(max_pool2d_shape(1, 1, 2, 2, 2, 2, 2, 2).h_out, 1);
}

TEST(MaxPool2dShape, WindowThatDoesNotFitThrows) {
  EXPECT_THROW(max_pool2d_shape(1, 1, 1, 5, 2, 2, 2, 2), polytask::Error);
  EXPECT_THROW(max_pool2d_shape(1, 1, 5, 2, 3, 3, 1, 1), polytask::Error);
  EXPECT_THROW(max_pool2d_shape(1, 1, 5, 5, 2, 2, 0, 2), polytask::Error);
  try {
    max_pool2d_shape(1, 1, 1, 5, 2, 2, 2, 2);
    FAIL() << "expected polytask::Error";
  } catch (const polytask::Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }
}

template <class T>
void check_forward_against_naive() {
  uint64_t seed = 1;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const MaxPool2dShape s = shape_of(g);
    const auto x = random_vector<T>(in_size(s), seed++);
    const Pooled<T> got = forward(s, x);
    const Pooled<double> want = naive_forward(s, std::vector<double>(x.begin(), x.end()));
    // Selection copies an input: exact in any precision.
    EXPECT_TRUE(all_close(got.y, want.y, 0, 0));
    EXPECT_EQ(got.argmax, want.argmax);
  }
}

TEST(MaxPool2dForward, DoubleMatchesDirectLoop) { check_forward_against_naive<double>(); }
TEST(MaxPool2dForward, FloatMatchesDirectLoop) { check_forward_against_naive<float>(); }

TEST(MaxPool2dForward, TiesPickTheFirstElementInRowMajorOrder) {
  // One 3x4 plane, 2x2 windows with stride 1 (overlapping).
  const MaxPool2dShape s = max_pool2d_shape(1, 1, 3, 4, 2, 2, 1, 1);
  const std::vector<double> x = {1, 3, 3, 0,   //
                                 3, 2, 3, 3,   //
                                 5, 5, 3, 3};
  const Pooled<double> got = forward(s, x);
  EXPECT_EQ(got.y, (std::vector<double>{3, 3, 3, 5, 5, 3}));
  EXPECT_EQ(got.argmax, (std::vector<int32_t>{1, 1, 2, 8, 9, 6}));

  const std::vector<float> same(12, -std::numeric_limits<float>::infinity());
  const Pooled<float> flat = forward(s, same);
  EXPECT_EQ(flat.argmax, (std::vector<int32_t>{0, 1, 2, 4, 5, 6}));
}

// The 2x2 / stride-2 fast path keeps the generic rule: the first of equal maxima wins.
TEST(MaxPool2dForward, TwoByTwoStrideTwoTiesPickTheFirst) {
  const MaxPool2dShape s = max_pool2d_shape(1, 1, 2, 4, 2, 2, 2, 2);
  const std::vector<double> x = {1, 1, 0, 3,  //
                                 1, 1, 3, 3};
  const Pooled<double> got = forward(s, x);
  EXPECT_EQ(got.y, (std::vector<double>{1, 3}));
  EXPECT_EQ(got.argmax, (std::vector<int32_t>{0, 3}));
}

TEST(MaxPool2dForward, NaNIsAlwaysChosen) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  // Windows (2x2, stride 2): a NaN after the maximum; a NaN first then larger values; two
  // NaNs (the first wins); a NaN beside +inf.
  const MaxPool2dShape s = max_pool2d_shape(1, 1, 2, 8, 2, 2, 2, 2);
  const std::vector<double> x = {5, 1, nan, 7, nan, 1,   inf, nan,  //
                                 2, nan, 9, 8, 4,   nan, 1,   2};
  const Pooled<double> got = forward(s, x);
  for (double v : got.y) EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(got.argmax, (std::vector<int32_t>{9, 2, 4, 7}));
}

// The documented rule, written plainly with branches: each window in row-major order, the
// first of equal maxima (strict '>'), a NaN replaces any non-NaN best and then stays.
template <class T>
Pooled<T> rule_forward(const MaxPool2dShape& s, const std::vector<T>& x) {
  Pooled<T> out{std::vector<T>(out_size(s)), std::vector<int32_t>(out_size(s))};
  for (int64_t p = 0; p < s.n * s.c; ++p)
    for (int64_t oh = 0; oh < s.h_out; ++oh)
      for (int64_t ow = 0; ow < s.w_out; ++ow) {
        T best = 0;
        int64_t best_index = -1;
        for (int64_t i = 0; i < s.k_h; ++i)
          for (int64_t j = 0; j < s.k_w; ++j) {
            const int64_t index = (oh * s.stride_h + i) * s.w_in + ow * s.stride_w + j;
            const T v = x[size_t(p * s.h_in * s.w_in + index)];
            bool take = best_index < 0;
            if (!take && !std::isnan(best)) take = std::isnan(v) || v > best;
            if (take) best = v, best_index = index;
          }
        const size_t o = size_t((p * s.h_out + oh) * s.w_out + ow);
        out.y[o] = best;
        out.argmax[o] = static_cast<int32_t>(best_index);
      }
  return out;
}

// Bit patterns, so that -0 differs from +0 and every NaN equals every NaN. Not the NaN's own
// bits: C++ fixes neither the sign nor the payload of a NaN that arithmetic makes (a + b may be
// compiled as b + a, and x86 returns the first operand's NaN), and the sanitizer build's code
// differs from the release build's there.
template <class T>
std::vector<std::string> bits_of(const std::vector<T>& v) {
  std::vector<std::string> out;
  for (T e : v) {
    if (std::isnan(e)) e = std::numeric_limits<T>::quiet_NaN();
    unsigned char b[sizeof(T)];
    std::memcpy(b, &e, sizeof(T));
    out.emplace_back(reinterpret_cast<const char*>(b), sizeof(T));
  }
  return out;
}

// Inputs made of ties: a few values (-inf, -1, -0, +0, 1, +inf) and some NaNs, so windows hold
// equal maxima, zeros of both signs and one or more NaNs in every position.
template <class T>
std::vector<T> tie_heavy(size_t count, uint64_t seed) {
  const T values[] = {-std::numeric_limits<T>::infinity(), T(-1), T(-0.0), T(0), T(1),
                      std::numeric_limits<T>::infinity(), std::numeric_limits<T>::quiet_NaN()};
  std::mt19937_64 rng(seed);
  std::vector<T> x(count);
  for (T& e : x) e = values[rng() % 7];
  return x;
}

// The 2x2 / stride-2 path (vectors, a last vector that overlaps the one before) and the
// generic path follow one rule: both against the plain reference on tie- and NaN-heavy data,
// with widths around the vector lengths (outputs per row 1..9 and 13, the workload's) and odd
// heights and widths that drop a row or a column.
std::vector<Geometry> rule_geometries() {
  std::vector<Geometry> geometries;
  for (int64_t w : {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 26, 27})
    for (int64_t h : {2, 5, 26}) geometries.push_back({2, 3, h, w, 2, 2, 2, 2});
  for (const Geometry& g : kGeometries) geometries.push_back(g);  // the generic path
  return geometries;
}

template <class T>
void check_forward_follows_the_rule() {
  uint64_t seed = 400;
  for (const Geometry& g : rule_geometries()) {
    SCOPED_TRACE(describe(g));
    const MaxPool2dShape s = shape_of(g);
    for (int trial = 0; trial < 4; ++trial) {
      const auto x = tie_heavy<T>(in_size(s), seed++);
      const Pooled<T> got = forward(s, x);
      const Pooled<T> want = rule_forward(s, x);
      EXPECT_EQ(bits_of(got.y), bits_of(want.y));
      EXPECT_EQ(got.argmax, want.argmax);
    }
  }
}

TEST(MaxPool2dForward, FloatFollowsTheRuleOnTiesZerosAndNaN) {
  check_forward_follows_the_rule<float>();
}
TEST(MaxPool2dForward, DoubleFollowsTheRuleOnTiesZerosAndNaN) {
  check_forward_follows_the_rule<double>();
}

// The backward's rule, written plainly: Overwrite starts from zeros, Accumulate from dx; each
// window adds its dy to the input its argmax names, in output order; with relu_y, only where
// the window's maximum is > 0. On both paths (the vector rows write positions rather than add
// them) the same bits, -0 and NaN included, around the vector lengths and with dropped rows and
// columns (which Overwrite must zero and Accumulate leave alone).
template <class T>
void check_backward_follows_the_rule() {
  uint64_t seed = 500;
  for (const Geometry& g : rule_geometries()) {
    SCOPED_TRACE(describe(g));
    const MaxPool2dShape s = shape_of(g);
    const Pooled<T> pooled = forward(s, tie_heavy<T>(in_size(s), seed++));
    const auto dy = tie_heavy<T>(out_size(s), seed++);
    const auto dx_seed = tie_heavy<T>(in_size(s), seed++);
    const size_t in_plane = size_t(s.h_in * s.w_in), out_plane = size_t(s.h_out * s.w_out);
    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate})
      for (bool gated : {false, true}) {
        SCOPED_TRACE(cat(mode == GradMode::Overwrite ? "overwrite" : "accumulate",
                         gated ? ", relu-gated" : ""));
        std::vector<T> want = mode == GradMode::Overwrite ? std::vector<T>(in_size(s), T(0)) : dx_seed;
        for (size_t o = 0; o < dy.size(); ++o) {
          const bool open = !gated || pooled.y[o] > T(0);
          want[o / out_plane * in_plane + size_t(pooled.argmax[o])] += open ? dy[o] : T(0);
        }
        std::vector<T> got = dx_seed;  // Overwrite must ignore it
        cpu::max_pool2d_backward(s, dy.data(), pooled.argmax.data(), got.data(), mode,
                                 gated ? pooled.y.data() : nullptr);
        EXPECT_EQ(bits_of(got), bits_of(want));
      }
  }
}

TEST(MaxPool2dBackward, FloatFollowsTheRuleOnTiesZerosAndNaN) {
  check_backward_follows_the_rule<float>();
}
TEST(MaxPool2dBackward, DoubleFollowsTheRuleOnTiesZerosAndNaN) {
  check_backward_follows_the_rule<double>();
}

// dot(pool(x), r) has gradient backward(dy = r); random inputs make ties (kinks) unlikely,
// and the checker skips the few that occur.
TEST(MaxPool2dBackward, MatchesCentralDifferences) {
  uint64_t seed = 100;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const MaxPool2dShape s = shape_of(g);
    auto x = random_vector(in_size(s), seed++);
    const auto r = random_vector(out_size(s), seed++);
    const auto dx = backward(s, r, forward(s, x).argmax, std::vector<double>(x.size()),
                             GradMode::Overwrite);
    // Piecewise linear: no truncation error away from ties, and a step of 1e-5 is far below
    // the typical gap between a window's two largest of at most 36 uniform values.
    polytask::testing::GradCheckOptions opt;
    opt.step = 1e-5;
    opt.rel_tol = 1e-8;
    opt.abs_tol = 1e-9;
    EXPECT_TRUE(check_gradient("dx", x, dx, [&] { return dot(forward(s, x).y, r); }, opt));
  }
}

TEST(MaxPool2d, FloatAgreesWithDouble) {
  uint64_t seed = 200;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const MaxPool2dShape s = shape_of(g);
    // Double inputs that are exactly representable in float, so both precisions see the same
    // values and pick the same elements.
    const auto xf = random_vector<float>(in_size(s), seed++);
    const auto dyf = random_vector<float>(out_size(s), seed++);
    const std::vector<double> x(xf.begin(), xf.end()), dy(dyf.begin(), dyf.end());
    const Pooled<float> pf = forward(s, xf);
    const Pooled<double> pd = forward(s, x);
    EXPECT_TRUE(all_close(pf.y, pd.y, 0, 0));  // selection is exact
    EXPECT_EQ(pf.argmax, pd.argmax);
    const auto dxf =
        backward(s, dyf, pf.argmax, std::vector<float>(xf.size()), GradMode::Overwrite);
    const auto dxd =
        backward(s, dy, pd.argmax, std::vector<double>(x.size()), GradMode::Overwrite);
    // A pixel sums at most (window / stride)^2 <= 9 dy values: a few float roundings.
    EXPECT_TRUE(all_close(dxf, dxd, 1e-6, 1e-6));
  }
}

// Accumulate adds onto a seed; Overwrite ignores the seed (even NaN) and zeroes pixels that no
// window picks (every geometry has some; the stride-3 one has pixels no window even reads).
TEST(MaxPool2dBackward, OverwriteAndAccumulateContract) {
  uint64_t seed = 300;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const MaxPool2dShape s = shape_of(g);
    const auto x = random_vector(in_size(s), seed++);
    const auto dy = random_vector(out_size(s), seed++);
    const auto argmax = forward(s, x).argmax;

    // The reference: every dy element added onto its argmax, plane by plane.
    std::vector<double> want(x.size(), 0.0);
    const size_t in_plane = size_t(s.h_in * s.w_in), out_plane = size_t(s.h_out * s.w_out);
    for (size_t o = 0; o < dy.size(); ++o)
      want[o / out_plane * in_plane + size_t(argmax[o])] += dy[o];

    std::vector<double> nan_seed(x.size());
    poison(nan_seed);
    const auto dx = backward(s, dy, argmax, nan_seed, GradMode::Overwrite);
    // Same additions in the same order: bit-identical.
    EXPECT_TRUE(all_close(dx, want, 0, 0));

    const auto grad_seed = random_vector(x.size(), seed++, 2, 3);
    const auto dx_acc = backward(s, dy, argmax, grad_seed, GradMode::Accumulate);
    for (size_t i = 0; i < want.size(); ++i) want[i] += grad_seed[i];
    // Adding the seed first rather than last only changes the rounding of <= 9 additions.
    EXPECT_TRUE(all_close(dx_acc, want, 1e-14, 1e-14));
  }
}

// The ReLU backward fused into the pool's (relu_y) equals the two passes it replaces, relu
// backward of the pool's dx: bit for bit when dx is overwritten and in every Accumulate case
// where no two windows send a gradient to one input; the overlapping ones only round
// differently (the seed is added first rather than last). The input is a ReLU's output, so it
// has zeros, ties at zero and windows that are all zero, whose gradient the gate must stop.
template <class T>
void check_fused_relu_backward() {
  uint64_t seed = 400;
  for (const Geometry& g : kGeometries) {
    SCOPED_TRACE(describe(g));
    const MaxPool2dShape s = shape_of(g);
    auto relu_out = random_vector<T>(in_size(s), seed++, -1, 1);
    const size_t in_plane = size_t(s.h_in * s.w_in);
    for (size_t i = 0; i < relu_out.size(); ++i)
      relu_out[i] = i / in_plane % 3 == 0 ? T(0) : std::max(relu_out[i], T(0));  // zero planes
    const auto pooled = forward(s, relu_out);
    const auto dy = random_vector<T>(out_size(s), seed++);
    const auto grad_seed = random_vector<T>(in_size(s), seed++);
    const bool overlap = g.stride_h < g.k_h || g.stride_w < g.k_w;
    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      SCOPED_TRACE(mode == GradMode::Overwrite ? "overwrite" : "accumulate");
      std::vector<T> pool_dx(in_size(s)), want = grad_seed;
      cpu::max_pool2d_backward(s, dy.data(), pooled.argmax.data(), pool_dx.data(),
                               GradMode::Overwrite);
      cpu::relu_backward<T>(int64_t(want.size()), relu_out.data(), pool_dx.data(), want.data(),
                            mode);
      std::vector<T> got = grad_seed;
      if (mode == GradMode::Overwrite) poison(got);
      cpu::max_pool2d_backward(s, dy.data(), pooled.argmax.data(), got.data(), mode,
                               pooled.y.data());
      const bool exact = mode == GradMode::Overwrite || !overlap;
      const double tol = exact ? 0 : 1e-5;
      EXPECT_TRUE(all_close(got, want, tol, tol));
      // The gate really stops something: some chosen inputs are zero.
      EXPECT_GT(std::count(pooled.y.begin(), pooled.y.end(), T(0)), 0);
    }
  }
}

TEST(MaxPool2dBackward, FusedReluBackwardEqualsTheTwoPassesFloat) {
  check_fused_relu_backward<float>();
}
TEST(MaxPool2dBackward, FusedReluBackwardEqualsTheTwoPassesDouble) {
  check_fused_relu_backward<double>();
}

TEST(MaxPool2d, EmptyBatchIsANoOp) {
  const MaxPool2dShape s = max_pool2d_shape(0, 3, 6, 6, 2, 2, 2, 2);
  cpu::max_pool2d_forward<double>(s, nullptr, nullptr, nullptr);
  cpu::max_pool2d_backward<double>(s, nullptr, nullptr, nullptr, GradMode::Overwrite);
}

}  // namespace
}  // namespace polytask::kernels
