// The soft-sharing penalty and its gradient (kernels/soft_sharing.h): hand-worked values, and
// the gradient against central differences of the penalty in double precision.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/error.h"
#include "kernels/soft_sharing.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cpu {
namespace {

TEST(SoftSharing, HandWorkedTwoCopies) {
  // W_0 = (1, 2), W_1 = (3, -1), λ = 0.5: P = 0.25·((1-3)² + (2+1)²) = 3.25;
  // ∂P/∂W_0 = λ(2·W_0 − (W_0 + W_1)) = 0.5·(W_0 − W_1) = (-1, 1.5), ∂P/∂W_1 = (1, -1.5),
  // added to gradients that already hold (10, 20) and (30, 40).
  std::vector<double> w0 = {1, 2}, w1 = {3, -1}, g0 = {10, 20}, g1 = {30, 40};
  const double* values[] = {w0.data(), w1.data()};
  double* grads[] = {g0.data(), g1.data()};
  EXPECT_DOUBLE_EQ(soft_sharing_penalty<double>(2, 2, values, 0.5), 3.25);
  soft_sharing_gradient<double>(2, 2, values, grads, 0.5);
  EXPECT_EQ(g0, (std::vector<double>{9, 21.5}));
  EXPECT_EQ(g1, (std::vector<double>{31, 38.5}));
}

TEST(SoftSharing, HandWorkedThreeCopies) {
  // One element, W = (0, 1, 5), λ = 2: pairs (0,1) 1, (0,2) 25, (1,2) 16 → P = 42;
  // ∂P/∂W_i = 2·(3·W_i − 6) = (-12, -6, 18).
  std::vector<double> a = {0}, b = {1}, c = {5}, ga = {0}, gb = {0}, gc = {0};
  const double* values[] = {a.data(), b.data(), c.data()};
  double* grads[] = {ga.data(), gb.data(), gc.data()};
  EXPECT_DOUBLE_EQ(soft_sharing_penalty<double>(1, 3, values, 2.0), 42.0);
  soft_sharing_gradient<double>(1, 3, values, grads, 2.0);
  EXPECT_EQ(ga[0], -12.0);
  EXPECT_EQ(gb[0], -6.0);
  EXPECT_EQ(gc[0], 18.0);
}

TEST(SoftSharing, GradientMatchesCentralDifferences) {
  const int members = 4;
  const int64_t count = 7;
  std::vector<double> flat = testing::random_vector<double>(size_t(members * count), 5);
  const auto pointers = [&] {
    std::vector<const double*> v;
    for (int i = 0; i < members; ++i) v.push_back(flat.data() + i * count);
    return v;
  };
  std::vector<double> grad(flat.size(), 0.0);
  std::vector<double*> grads;
  for (int i = 0; i < members; ++i) grads.push_back(grad.data() + i * count);
  soft_sharing_gradient<double>(count, members, pointers().data(), grads.data(), 0.7);
  std::vector<double> x = flat;
  EXPECT_TRUE(testing::check_gradient("soft sharing", x, grad, [&] {
    flat = x;
    return soft_sharing_penalty<double>(count, members, pointers().data(), 0.7);
  }));
}

TEST(SoftSharing, RefusesTooManyOrNoCopies) {
  std::vector<float> w(1), g(1);
  std::vector<const float*> values(kMaxSoftSharedCopies + 1, w.data());
  std::vector<float*> grads(kMaxSoftSharedCopies + 1, g.data());
  EXPECT_THROW(soft_sharing_gradient<float>(1, kMaxSoftSharedCopies + 1, values.data(),
                                            grads.data(), 1.0f),
               Error);
  EXPECT_THROW(soft_sharing_gradient<float>(1, 0, values.data(), grads.data(), 1.0f), Error);
}

}  // namespace
}  // namespace polytask::kernels::cpu
