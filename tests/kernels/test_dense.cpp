// CPU dense (fully connected) layer: forward against naive loops, gradients against central
// differences in double, float against double, the Overwrite/Accumulate contract, empty shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/dense.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cpu {
namespace {

using polytask::testing::all_close;
using polytask::testing::check_gradient;
using polytask::testing::dot;
using polytask::testing::poison;
using polytask::testing::random_vector;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Odd sizes so that no dimension coincides with another or with a SIMD width.
constexpr DenseShape kShape{5, 13, 9};

size_t sz(int64_t v) { return static_cast<size_t>(v); }

template <class To, class From>
std::vector<To> convert(const std::vector<From>& v) {
  std::vector<To> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<To>(v[i]);
  return out;
}

// The textbook definition, accumulated in double whatever T is.
template <class T>
std::vector<double> naive_forward(const DenseShape& s, const std::vector<T>& x,
                                  const std::vector<T>& w, const T* b) {
  std::vector<double> y(sz(s.n * s.out));
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t o = 0; o < s.out; ++o) {
      double acc = b ? static_cast<double>(b[o]) : 0.0;
      for (int64_t k = 0; k < s.in; ++k)
        acc += static_cast<double>(x[sz(i * s.in + k)]) * static_cast<double>(w[sz(o * s.in + k)]);
      y[sz(i * s.out + o)] = acc;
    }
  return y;
}

template <class T>
class DenseTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(DenseTyped, Scalars);

TYPED_TEST(DenseTyped, ForwardMatchesNaiveLoopsWithAndWithoutBias) {
  using T = TypeParam;
  const DenseShape s = kShape;
  const auto x = random_vector<T>(sz(s.n * s.in), 1);
  const auto w = random_vector<T>(sz(s.out * s.in), 2);
  const auto b = random_vector<T>(sz(s.out), 3);
  // |y| ≤ 14 and each product rounds once per term: 13 terms of float eps (1.2e-7) is ~2e-6;
  // double is far inside the same bound.
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  for (const T* bias : {b.data(), static_cast<const T*>(nullptr)}) {
    std::vector<T> y(sz(s.n * s.out));
    poison(y);
    dense_forward(s, x.data(), w.data(), bias, y.data());
    EXPECT_TRUE(all_close(y, naive_forward(s, x, w, bias), tol, tol))
        << (bias ? "with bias" : "without bias");
  }
}

TYPED_TEST(DenseTyped, ColumnSumTakesTheParallelPathDeterministically) {
  using T = TypeParam;
  // n·out above the 2^15 threshold so the OpenMP branch of the bias and db loops runs.
  const DenseShape s{301, 3, 131};
  const auto x = random_vector<T>(sz(s.n * s.in), 4);
  const auto dy = random_vector<T>(sz(s.n * s.out), 5);
  std::vector<T> dw(sz(s.out * s.in)), db(sz(s.out)), db_again(sz(s.out));
  poison(db);
  dense_backward_filter(s, x.data(), dy.data(), dw.data(), db.data(), GradMode::Overwrite);
  dense_backward_filter(s, x.data(), dy.data(), dw.data(), db_again.data(), GradMode::Overwrite);
  std::vector<double> expected(sz(s.out), 0.0);
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t o = 0; o < s.out; ++o)
      expected[sz(o)] += static_cast<double>(dy[sz(i * s.out + o)]);
  // Summed in double and rounded once to T: within one ulp of T.
  EXPECT_TRUE(all_close(db, expected, 2 * std::numeric_limits<T>::epsilon(), 0.0));
  EXPECT_EQ(db, db_again);
}

// dot(forward(x, w, b), r) is linear in each argument, so central differences are exact up to
// rounding: rounding of ~1e-15·|f| / 1e-6 step ≈ 1e-9 absolute is the only error.
TEST(Dense, GradientsMatchCentralDifferences) {
  const DenseShape s = kShape;
  auto x = random_vector(sz(s.n * s.in), 10);
  auto w = random_vector(sz(s.out * s.in), 11);
  auto b = random_vector(sz(s.out), 12);
  const auto r = random_vector(sz(s.n * s.out), 13);
  std::vector<double> y(sz(s.n * s.out));
  const auto objective = [&] {
    dense_forward(s, x.data(), w.data(), b.data(), y.data());
    return dot(y, r);
  };
  std::vector<double> dx(x.size()), dw(w.size()), db(b.size());
  poison(dx), poison(dw), poison(db);
  dense_backward_data(s, r.data(), w.data(), dx.data(), GradMode::Overwrite);
  dense_backward_filter(s, x.data(), r.data(), dw.data(), db.data(), GradMode::Overwrite);
  polytask::testing::GradCheckOptions opt;
  opt.abs_tol = 1e-8;
  EXPECT_TRUE(check_gradient("dx", x, dx, objective, opt));
  EXPECT_TRUE(check_gradient("dw", w, dw, objective, opt));
  EXPECT_TRUE(check_gradient("db", b, db, objective, opt));
}

TEST(Dense, FloatAgreesWithDouble) {
  const DenseShape s = kShape;
  // Both runs see the same (float-representable) inputs, so only kernel arithmetic differs.
  const auto xf = random_vector<float>(sz(s.n * s.in), 20);
  const auto wf = random_vector<float>(sz(s.out * s.in), 21);
  const auto bf = random_vector<float>(sz(s.out), 22);
  const auto dyf = random_vector<float>(sz(s.n * s.out), 23);
  const auto xd = convert<double>(xf), wd = convert<double>(wf), bd = convert<double>(bf),
             dyd = convert<double>(dyf);

  std::vector<float> yf(sz(s.n * s.out)), dxf(xf.size()), dwf(wf.size()), dbf(bf.size());
  std::vector<double> yd(yf.size()), dxd(xd.size()), dwd(wd.size()), dbd(bd.size());
  dense_forward(s, xf.data(), wf.data(), bf.data(), yf.data());
  dense_forward(s, xd.data(), wd.data(), bd.data(), yd.data());
  dense_backward_data(s, dyf.data(), wf.data(), dxf.data(), GradMode::Overwrite);
  dense_backward_data(s, dyd.data(), wd.data(), dxd.data(), GradMode::Overwrite);
  dense_backward_filter(s, xf.data(), dyf.data(), dwf.data(), dbf.data(), GradMode::Overwrite);
  dense_backward_filter(s, xd.data(), dyd.data(), dwd.data(), dbd.data(), GradMode::Overwrite);
  // Sums of at most 13 products of magnitude ≤ 1 in float: ~13 · 6e-8 absolute, and
  // cancellation can leave a small result, hence the absolute term dominates.
  constexpr double kRel = 1e-5, kAbs = 2e-6;
  EXPECT_TRUE(all_close(yf, yd, kRel, kAbs));
  EXPECT_TRUE(all_close(dxf, dxd, kRel, kAbs));
  EXPECT_TRUE(all_close(dwf, dwd, kRel, kAbs));
  EXPECT_TRUE(all_close(dbf, dbd, kRel, kAbs));
}

TEST(Dense, BackwardHonoursOverwriteAndAccumulate) {
  const DenseShape s = kShape;
  const auto x = random_vector(sz(s.n * s.in), 30);
  const auto w = random_vector(sz(s.out * s.in), 31);
  const auto dy = random_vector(sz(s.n * s.out), 32);
  std::vector<double> dx(x.size()), dw(w.size()), db(sz(s.out));
  dense_backward_data(s, dy.data(), w.data(), dx.data(), GradMode::Overwrite);
  dense_backward_filter(s, x.data(), dy.data(), dw.data(), db.data(), GradMode::Overwrite);

  const auto seed_dx = random_vector(dx.size(), 33, -3, 3);
  const auto seed_dw = random_vector(dw.size(), 34, -3, 3);
  const auto seed_db = random_vector(db.size(), 35, -3, 3);
  auto acc_dx = seed_dx, acc_dw = seed_dw, acc_db = seed_db;
  dense_backward_data(s, dy.data(), w.data(), acc_dx.data(), GradMode::Accumulate);
  dense_backward_filter(s, x.data(), dy.data(), acc_dw.data(), acc_db.data(), GradMode::Accumulate);
  const auto plus = [](std::vector<double> a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
    return a;
  };
  // BLAS may fuse beta·C into its FMA chain, so seed + grad can differ by a few ulps.
  EXPECT_TRUE(all_close(acc_dx, plus(seed_dx, dx), 1e-13, 1e-13));
  EXPECT_TRUE(all_close(acc_dw, plus(seed_dw, dw), 1e-13, 1e-13));
  EXPECT_TRUE(all_close(acc_db, plus(seed_db, db), 1e-13, 1e-13));

  // Overwrite must not read the old contents: NaN seeds would otherwise leak through 0·NaN.
  std::vector<double> nan_dx(dx.size(), kNaN), nan_dw(dw.size(), kNaN), nan_db(db.size(), kNaN);
  dense_backward_data(s, dy.data(), w.data(), nan_dx.data(), GradMode::Overwrite);
  dense_backward_filter(s, x.data(), dy.data(), nan_dw.data(), nan_db.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(nan_dx, dx, 0.0, 0.0));
  EXPECT_TRUE(all_close(nan_dw, dw, 0.0, 0.0));
  EXPECT_TRUE(all_close(nan_db, db, 0.0, 0.0));
}

TEST(Dense, BiasIsOptionalInBackward) {
  const DenseShape s = kShape;
  const auto x = random_vector(sz(s.n * s.in), 40);
  const auto dy = random_vector(sz(s.n * s.out), 41);
  std::vector<double> dw(sz(s.out * s.in)), dw_with_bias(dw.size()), db(sz(s.out));
  dense_backward_filter<double>(s, x.data(), dy.data(), dw.data(), nullptr, GradMode::Overwrite);
  dense_backward_filter(s, x.data(), dy.data(), dw_with_bias.data(), db.data(),
                        GradMode::Overwrite);
  EXPECT_EQ(dw, dw_with_bias);
}

TEST(Dense, EmptyBatchStillZeroesParameterGradientsOnOverwrite) {
  const DenseShape s{0, 13, 9};
  const auto w = random_vector(sz(s.out * s.in), 50);
  std::vector<double> dw(sz(s.out * s.in), kNaN), db(sz(s.out), kNaN);
  // No rows: x, dy, y and dx are empty, so null pointers must be fine.
  dense_forward<double>(s, nullptr, w.data(), nullptr, nullptr);
  dense_backward_data<double>(s, nullptr, w.data(), nullptr, GradMode::Overwrite);
  dense_backward_filter<double>(s, nullptr, nullptr, dw.data(), db.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(dw, std::vector<double>(dw.size(), 0.0), 0.0, 0.0));
  EXPECT_TRUE(all_close(db, std::vector<double>(db.size(), 0.0), 0.0, 0.0));

  auto acc_dw = random_vector(dw.size(), 51), acc_db = random_vector(db.size(), 52);
  const auto seed_dw = acc_dw, seed_db = acc_db;
  dense_backward_filter<double>(s, nullptr, nullptr, acc_dw.data(), acc_db.data(),
                                GradMode::Accumulate);
  EXPECT_EQ(acc_dw, seed_dw);
  EXPECT_EQ(acc_db, seed_db);
}

TEST(Dense, EmptyFeatureAxesGiveBiasAndZeroGradients) {
  // in == 0: y is the bias alone; out == 0: dx receives nothing, i.e. zero on Overwrite.
  const DenseShape no_in{3, 0, 4};
  const auto b = random_vector(sz(no_in.out), 60);
  std::vector<double> y(sz(no_in.n * no_in.out));
  poison(y);
  dense_forward<double>(no_in, nullptr, nullptr, b.data(), y.data());
  for (int64_t i = 0; i < no_in.n; ++i)
    for (int64_t o = 0; o < no_in.out; ++o) EXPECT_EQ(y[sz(i * no_in.out + o)], b[sz(o)]);
  dense_forward<double>(no_in, nullptr, nullptr, nullptr, y.data());
  EXPECT_TRUE(all_close(y, std::vector<double>(y.size(), 0.0), 0.0, 0.0));

  const DenseShape no_out{3, 4, 0};
  std::vector<double> dx(sz(no_out.n * no_out.in), kNaN);
  dense_backward_data<double>(no_out, nullptr, nullptr, dx.data(), GradMode::Overwrite);
  EXPECT_TRUE(all_close(dx, std::vector<double>(dx.size(), 0.0), 0.0, 0.0));
}

}  // namespace
}  // namespace polytask::kernels::cpu
