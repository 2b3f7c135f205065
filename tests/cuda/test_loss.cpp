// CUDA losses (kernels/cuda/loss.cu) against the CPU reference: softmax cross-entropy with labels
// and with targets over every row-group width (4, 8, 16, 32 lanes and block-wide rows) and both
// reduction paths (one block, two passes), extreme logits, BCE and MSE at odd and workload
// sizes, Overwrite and Accumulate over non-zero seeds, NaN-poisoned outputs, bad labels, and
// bit-identical repeats of every forward reduction.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/error.h"
#include "kernels/loss.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::all_close;
using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

size_t sz(int64_t v) { return static_cast<size_t>(v); }

struct Shape {
  int64_t rows, classes;
};

// Row-group widths: classes ≤ 4 → 4 lanes, ≤ 8 → 8, ≤ 16 → 16, ≤ 1024 → a warp, more → the
// block. Rows: one block (≤ 256 / width rows) or several (the two-pass reduction).
std::vector<Shape> softmax_shapes() {
  std::vector<Shape> shapes = {{1, 1},     {1, 2},     {31, 2},  {33, 3},  {300, 7},
                               {128, 10},  {1000, 10}, {65, 20}, {7, 100}, {128, 100},
                               {33, 1000}, {3, 2000},  {2, 4099}};
  // Past the kReduceBlocks cap, so blocks take several turns: too slow to emulate.
  if (!polytask::testing::kEmulated) {
    shapes.push_back({20000, 10});
    shapes.push_back({1100, 1100});
    shapes.push_back({65536, 1000});
  }
  return shapes;
}

float download_scalar(const DeviceArray<float>& x) { return x.download()[0]; }

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

std::vector<int32_t> random_labels(int64_t rows, int64_t classes, uint64_t seed) {
  const std::vector<double> u = random_vector<double>(sz(rows), seed, 0.0, 1.0);
  std::vector<int32_t> labels(sz(rows));
  for (size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<int32_t>(
        std::min<double>(u[i] * static_cast<double>(classes), static_cast<double>(classes - 1)));
  return labels;
}

// Soft target rows: positive, normalised, with one unnormalised row (the exact gradient p·Σt - t
// differs from p - t there) and a one-hot row.
std::vector<float> random_targets(int64_t rows, int64_t classes, uint64_t seed) {
  std::vector<float> t = random_vector<float>(sz(rows * classes), seed, 0.0, 1.0);
  for (int64_t i = 0; i < rows; ++i) {
    double sum = 0.0;
    for (int64_t j = 0; j < classes; ++j) sum += static_cast<double>(t[sz(i * classes + j)]);
    const double scale = i == 1 ? 1.7 / sum : 1.0 / sum;
    for (int64_t j = 0; j < classes; ++j)
      t[sz(i * classes + j)] =
          static_cast<float>(static_cast<double>(t[sz(i * classes + j)]) * scale);
  }
  if (rows > 2)
    for (int64_t j = 0; j < classes; ++j) t[sz(2 * classes + j)] = j == classes / 2 ? 1.0f : 0.0f;
  return t;
}

// ---- tolerances ---------------------------------------------------------------------------------
//
// Probabilities: float exp (≤ 2 ulp on the GPU), the rounding of z - max (relative error
// ≤ 2^-24·|z - max| after exp), a lane's float sum of up to 128 exp terms (≤ 128·2^-24 ≈ 7.6e-6
// relative in the worst case, ~1e-7 typically) and one division. 1e-5 covers the worst case of
// the widest rows tested; a wrong normaliser or a lost class is off by ≥ 1/classes ≥ 2.4e-4.
constexpr double kProbRelTol = 1e-5;
// The loss: each row term takes log(sum), whose absolute error is the sum's relative error
// (above); the rest is formed in double. Same bound, on losses ≥ log(2) (plus 1e-6 absolute
// for the exact 0 of one-class rows).
constexpr double kLossRelTol = 1e-5, kLossAbsTol = 1e-6;
// Gradients: factor·(p - onehot) rounds the factor, the difference and the product in float
// where the CPU rounds once from double: ≤ 2 ulp (2.4e-7) relative, 5e-7 with margin. Where the
// difference cancels (p ≈ t with soft targets, σ(z) ≈ t), the error is an ulp of the operands
// (≤ 1), times the factor. With Accumulate both sides then round seed + value, which may round
// apart by an ulp of the O(1) seeds: 2^-23 ≈ 1.2e-7 absolute.
constexpr double kGradRelTol = 5e-7;
double grad_abs_tol(double factor, GradMode mode) {
  return 2.4e-7 * std::fabs(factor) + (mode == GradMode::Accumulate ? 1.2e-7 : 0.0);
}

// ---- softmax cross-entropy with labels ----------------------------------------------------------

TEST(CudaLoss, SoftmaxCrossEntropyForwardMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (const Shape s : softmax_shapes()) {
    const std::vector<float> logits = random_vector<float>(sz(s.rows * s.classes), 1, -4.0, 4.0);
    const std::vector<int32_t> labels = random_labels(s.rows, s.classes, 2);
    std::vector<float> probs(sz(s.rows * s.classes));
    float loss = 0.0f;
    cpu::softmax_cross_entropy_forward<float>(s.rows, s.classes, logits.data(), labels.data(),
                                              probs.data(), &loss);
    DeviceArray<float> d_logits(logits), d_probs(probs.size()), d_loss(1);
    DeviceArray<int32_t> d_labels(labels);
    DeviceArray<int> bad(std::vector<int>{12345});
    DeviceArray<double> partials(sz(kReduceWorkspace));
    softmax_cross_entropy_forward(s.rows, s.classes, d_logits.get(), d_labels.get(), d_probs.get(),
                                  d_loss.get(), bad.get(), partials.get(), test_stream());
    EXPECT_TRUE(all_close(d_probs.download(), probs, kProbRelTol, 1e-12))
        << s.rows << "x" << s.classes;
    EXPECT_NEAR(download_scalar(d_loss), loss, kLossAbsTol + kLossRelTol * std::fabs(loss))
        << s.rows << "x" << s.classes;
    EXPECT_EQ(bad.download()[0], -1) << "every label is valid";
  }
}

TEST(CudaLoss, SoftmaxCrossEntropyIsStableForExtremeLogits) {
  POLYTASK_REQUIRE_GPU();
  for (const Shape s : {Shape{33, 10}, Shape{7, 100}}) {
    std::vector<float> logits = random_vector<float>(sz(s.rows * s.classes), 3, -1000.0, 1000.0);
    logits[0] = 88.0f;  // e^88 overflows float without the maximum subtracted
    const std::vector<int32_t> labels = random_labels(s.rows, s.classes, 4);
    std::vector<float> probs(sz(s.rows * s.classes));
    float loss = 0.0f;
    cpu::softmax_cross_entropy_forward<float>(s.rows, s.classes, logits.data(), labels.data(),
                                              probs.data(), &loss);
    DeviceArray<float> d_logits(logits), d_probs(probs.size()), d_loss(1);
    DeviceArray<int32_t> d_labels(labels);
    DeviceArray<double> partials(sz(kReduceWorkspace));
    softmax_cross_entropy_forward(s.rows, s.classes, d_logits.get(), d_labels.get(), d_probs.get(),
                                  d_loss.get(), nullptr, partials.get(), test_stream());
    const std::vector<float> got = d_probs.download();
    EXPECT_TRUE(polytask::testing::all_finite(got));
    EXPECT_TRUE(all_close(got, probs, kProbRelTol, 1e-12));
    EXPECT_TRUE(std::isfinite(download_scalar(d_loss)));
    EXPECT_NEAR(download_scalar(d_loss), loss, kLossRelTol * std::fabs(loss));
  }
}

// The one-read normaliser must end where the CPU's two-pass form ends on special values: -inf
// logits get probability 0 (also as a lane's first or only column), a row of only -inf and a row
// holding a NaN give NaN probabilities (and a NaN loss).
TEST(CudaLoss, SoftmaxCrossEntropySpecialValuesMatchCpu) {
  POLYTASK_REQUIRE_GPU();
  const float inf = std::numeric_limits<float>::infinity(),
              nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    int64_t classes;
    std::vector<float> logits;
    bool nan_loss;
  };
  const std::vector<Case> cases = {
      {5, {-inf, 1.0f, 2.0f, -inf, 0.5f, /**/ 3.0f, -inf, -inf, -inf, -inf}, false},
      {3, {-inf, -inf, -inf, /**/ 0.0f, 1.0f, 2.0f}, true},
      {5, {1.0f, nan, 2.0f, 0.0f, 0.0f, /**/ 0.0f, 1.0f, 2.0f, 3.0f, 4.0f}, true},
  };
  for (const Case& c : cases) {
    const int64_t rows = static_cast<int64_t>(c.logits.size()) / c.classes;
    std::vector<int32_t> labels(sz(rows), 0);
    labels[0] = 1;  // a finite logit in the first case's first row (the loss stays finite)
    std::vector<float> probs(c.logits.size());
    float loss = 0.0f;
    cpu::softmax_cross_entropy_forward<float>(rows, c.classes, c.logits.data(), labels.data(),
                                              probs.data(), &loss);
    DeviceArray<float> d_logits(c.logits), d_probs(probs.size()), d_loss(1);
    DeviceArray<int32_t> d_labels(labels);
    DeviceArray<double> partials(sz(kReduceWorkspace));
    softmax_cross_entropy_forward(rows, c.classes, d_logits.get(), d_labels.get(), d_probs.get(),
                                  d_loss.get(), nullptr, partials.get(), test_stream());
    const std::vector<float> got = d_probs.download();
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(std::isnan(got[i]), std::isnan(probs[i]))
          << "element " << i << ": " << got[i] << " vs " << probs[i];
      if (!std::isnan(probs[i])) {
        EXPECT_NEAR(got[i], probs[i], kProbRelTol * probs[i]) << "element " << i;
      }
    }
    EXPECT_EQ(std::isnan(loss), c.nan_loss);
    EXPECT_EQ(std::isnan(download_scalar(d_loss)), c.nan_loss);
    if (!c.nan_loss) {
      EXPECT_NEAR(download_scalar(d_loss), loss, kLossRelTol * std::fabs(loss));
    }
  }
}

TEST(CudaLoss, SoftmaxCrossEntropyBackwardMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (const Shape s : softmax_shapes())
    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      // Backward alone: both sides start from the CPU's probabilities.
      const std::vector<float> logits = random_vector<float>(sz(s.rows * s.classes), 5, -4.0, 4.0);
      const std::vector<int32_t> labels = random_labels(s.rows, s.classes, 6);
      std::vector<float> probs(sz(s.rows * s.classes));
      float loss = 0.0f;
      cpu::softmax_cross_entropy_forward<float>(s.rows, s.classes, logits.data(), labels.data(),
                                                probs.data(), &loss);
      const float scale = 0.7f;
      std::vector<float> expected = random_vector<float>(probs.size(), 7);  // the seed
      DeviceArray<float> d_probs(probs), d_dlogits(probs.size());
      DeviceArray<int32_t> d_labels(labels);
      if (mode == GradMode::Accumulate) d_dlogits.upload(expected);
      cpu::softmax_cross_entropy_backward<float>(s.rows, s.classes, probs.data(), labels.data(),
                                                 scale, expected.data(), mode);
      softmax_cross_entropy_backward(s.rows, s.classes, d_probs.get(), d_labels.get(), scale,
                                     d_dlogits.get(), mode, test_stream());
      const double factor = 0.7 / static_cast<double>(s.rows);
      EXPECT_TRUE(
          all_close(d_dlogits.download(), expected, kGradRelTol, grad_abs_tol(factor, mode)))
          << s.rows << "x" << s.classes << (mode == GradMode::Accumulate ? " accumulate" : "");
    }
}

// ---- bad labels ---------------------------------------------------------------------------------

struct BadLabelCase {
  Shape shape;
  std::vector<std::pair<int64_t, int32_t>> bad;  // (row, label)
  int expected_row;
};

TEST(CudaLoss, BadLabelsAreReportedNotReadOutOfBounds) {
  POLYTASK_REQUIRE_GPU();
  const std::vector<BadLabelCase> cases = {
      {{40, 10}, {{5, 10}, {9, -1}, {30, 1000000}}, 5},
      // Several blocks (4 lanes a row, 64 rows a block): the minimum across blocks wins, not the
      // first block to finish.
      {{4099, 3}, {{3000, 3}, {100, -7}, {4098, 5}}, 100},
      {{4099, 3}, {{4098, 3}}, 4098},
      {{3, 2000}, {{2, 2000}}, 2},
      {{5, 0}, {}, 0},  // no classes: every label is out of range
  };
  for (const BadLabelCase& c : cases) {
    const Shape s = c.shape;
    const std::vector<float> logits = random_vector<float>(sz(s.rows * s.classes), 8, -4.0, 4.0);
    std::vector<int32_t> labels = random_labels(s.rows, s.classes, 9);
    for (const auto& [row, label] : c.bad) labels[sz(row)] = label;
    // The CPU reference throws on these labels; its softmax is computed with valid ones.
    std::vector<int32_t> valid(labels.size(), 0);
    std::vector<float> probs(sz(s.rows * s.classes));
    float unused = 0.0f;
    if (s.classes > 0)
      cpu::softmax_cross_entropy_forward<float>(s.rows, s.classes, logits.data(), valid.data(),
                                                probs.data(), &unused);
    EXPECT_THROW(cpu::softmax_cross_entropy_forward<float>(s.rows, s.classes, logits.data(),
                                                           labels.data(), probs.data(), &unused),
                 Error);  // (it checks every label before writing anything)

    DeviceArray<float> d_logits(logits), d_probs(probs.size()), d_loss(1);
    DeviceArray<int32_t> d_labels(labels);
    DeviceArray<int> bad(std::vector<int>{12345});
    DeviceArray<double> partials(sz(kReduceWorkspace));
    softmax_cross_entropy_forward(s.rows, s.classes, d_logits.get(), d_labels.get(), d_probs.get(),
                                  d_loss.get(), bad.get(), partials.get(), test_stream());
    EXPECT_EQ(bad.download()[0], c.expected_row) << s.rows << "x" << s.classes;
    EXPECT_TRUE(std::isnan(download_scalar(d_loss))) << "a bad label makes the loss NaN";
    EXPECT_TRUE(all_close(d_probs.download(), probs, kProbRelTol, 1e-12))
        << "probs still the softmax";

    // Backward: bad rows get no one-hot term (scale·p/rows), the others the usual gradient.
    if (s.classes == 0) continue;
    std::vector<float> expected(probs.size());
    const double factor = 1.0 / static_cast<double>(s.rows);
    for (int64_t i = 0; i < s.rows; ++i)
      for (int64_t j = 0; j < s.classes; ++j)
        expected[sz(i * s.classes + j)] =
            static_cast<float>(factor * (static_cast<double>(probs[sz(i * s.classes + j)]) -
                                         (labels[sz(i)] == j ? 1.0 : 0.0)));
    DeviceArray<float> d_cpu_probs(probs), d_dlogits(probs.size());
    softmax_cross_entropy_backward(s.rows, s.classes, d_cpu_probs.get(), d_labels.get(), 1.0f,
                                   d_dlogits.get(), GradMode::Overwrite, test_stream());
    EXPECT_TRUE(all_close(d_dlogits.download(), expected, kGradRelTol,
                          grad_abs_tol(factor, GradMode::Overwrite)));
  }
}

TEST(CudaLoss, EmptyBatchHasZeroLoss) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> logits(1), probs(1), loss(1);
  DeviceArray<int32_t> labels(1);
  DeviceArray<int> bad(std::vector<int>{12345});
  DeviceArray<double> partials(sz(kReduceWorkspace));
  softmax_cross_entropy_forward(0, 10, logits.get(), labels.get(), probs.get(), loss.get(),
                                bad.get(), partials.get(), test_stream());
  EXPECT_EQ(download_scalar(loss), 0.0f);
  EXPECT_EQ(bad.download()[0], -1);
  mse_forward(0, logits.get(), logits.get(), loss.get(), partials.get(), test_stream());
  EXPECT_EQ(download_scalar(loss), 0.0f);
}

// ---- softmax cross-entropy with targets ---------------------------------------------------------

TEST(CudaLoss, SoftmaxCrossEntropyTargetsForwardAndBackward) {
  POLYTASK_REQUIRE_GPU();
  for (const Shape s : softmax_shapes()) {
    const std::vector<float> logits = random_vector<float>(sz(s.rows * s.classes), 10, -4.0, 4.0);
    const std::vector<float> targets = random_targets(s.rows, s.classes, 11);
    std::vector<float> probs(sz(s.rows * s.classes));
    float loss = 0.0f;
    cpu::softmax_cross_entropy_targets_forward<float>(s.rows, s.classes, logits.data(),
                                                      targets.data(), probs.data(), &loss);
    DeviceArray<float> d_logits(logits), d_targets(targets), d_probs(probs.size()), d_loss(1);
    DeviceArray<double> partials(sz(kReduceWorkspace));
    softmax_cross_entropy_targets_forward(s.rows, s.classes, d_logits.get(), d_targets.get(),
                                          d_probs.get(), d_loss.get(), partials.get(),
                                          test_stream());
    EXPECT_TRUE(all_close(d_probs.download(), probs, kProbRelTol, 1e-12))
        << s.rows << "x" << s.classes;
    EXPECT_NEAR(download_scalar(d_loss), loss, kLossAbsTol + kLossRelTol * std::fabs(loss))
        << s.rows << "x" << s.classes;

    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const float scale = 1.3f;
      std::vector<float> expected = random_vector<float>(probs.size(), 12);
      DeviceArray<float> d_cpu_probs(probs), d_dlogits(probs.size());
      if (mode == GradMode::Accumulate) d_dlogits.upload(expected);
      cpu::softmax_cross_entropy_targets_backward<float>(
          s.rows, s.classes, probs.data(), targets.data(), scale, expected.data(), mode);
      softmax_cross_entropy_targets_backward(s.rows, s.classes, d_cpu_probs.get(), d_targets.get(),
                                             scale, d_dlogits.get(), mode, test_stream());
      const double factor = 1.3 / static_cast<double>(s.rows);
      EXPECT_TRUE(
          all_close(d_dlogits.download(), expected, kGradRelTol, grad_abs_tol(factor, mode)))
          << s.rows << "x" << s.classes << (mode == GradMode::Accumulate ? " accumulate" : "");
    }
  }
}

// ---- binary cross-entropy and MSE ---------------------------------------------------------------

// The workload's regression and binary heads (128x1), odd sizes, and enough elements for the
// two-pass reduction (one block takes ≥ 4096).
const std::vector<int64_t> kFlatSizes = {1, 31, 33, 128, 1000, 4099, 100000};

std::vector<float> bce_logits(int64_t n, uint64_t seed) {
  std::vector<float> z = random_vector<float>(sz(n), seed, -8.0, 8.0);
  const float specials[] = {0.0f, 100.0f, -100.0f, 30.0f, -30.0f};
  for (size_t k = 0; k < 5 && k < z.size(); ++k) z[k * 3 % z.size()] = specials[k];
  return z;
}

TEST(CudaLoss, BinaryCrossEntropyForwardAndBackward) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kFlatSizes) {
    const std::vector<float> logits = bce_logits(n, 20);
    std::vector<float> targets = random_vector<float>(sz(n), 21, 0.0, 1.0);
    targets[0] = 1.0f;
    float loss = 0.0f;
    cpu::binary_cross_entropy_forward<float>(n, logits.data(), targets.data(), &loss);
    DeviceArray<float> d_logits(logits), d_targets(targets), d_loss(1);
    DeviceArray<double> partials(sz(kReduceWorkspace));
    binary_cross_entropy_forward(n, d_logits.get(), d_targets.get(), d_loss.get(), partials.get(),
                                 test_stream());
    // Per element: log1pf(expf(-|z|)) carries ≤ ~3 float ulps of a value ≤ log 2 (≤ 2.5e-7
    // absolute); the rest is exact in double. The mean keeps that bound.
    EXPECT_NEAR(download_scalar(d_loss), loss, 5e-7 + 1e-6 * std::fabs(loss)) << "n=" << n;

    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const float scale = 0.5f;
      std::vector<float> expected = random_vector<float>(sz(n), 22);
      DeviceArray<float> d_dlogits(sz(n));
      if (mode == GradMode::Accumulate) d_dlogits.upload(expected);
      cpu::binary_cross_entropy_backward<float>(n, logits.data(), targets.data(), scale,
                                                expected.data(), mode);
      binary_cross_entropy_backward(n, d_logits.get(), d_targets.get(), scale, d_dlogits.get(),
                                    mode, test_stream());
      // σ(z) in float is within ~3 ulps (≤ 3.6e-7 absolute, σ ≤ 1); σ - t can cancel, so the
      // bound is absolute, times the factor.
      const double factor = 0.5 / static_cast<double>(n);
      EXPECT_TRUE(
          all_close(d_dlogits.download(), expected, kGradRelTol, 2.0 * grad_abs_tol(factor, mode)))
          << "n=" << n;
    }
  }
}

TEST(CudaLoss, MseForwardAndBackward) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kFlatSizes) {
    const std::vector<float> pred = random_vector<float>(sz(n), 30, -3.0, 3.0);
    const std::vector<float> target = random_vector<float>(sz(n), 31, -3.0, 3.0);
    float loss = 0.0f;
    cpu::mse_forward<float>(n, pred.data(), target.data(), &loss);
    DeviceArray<float> d_pred(pred), d_target(target), d_loss(1);
    DeviceArray<double> partials(sz(kReduceWorkspace));
    mse_forward(n, d_pred.get(), d_target.get(), d_loss.get(), partials.get(), test_stream());
    // Both sum exact squares in double, in different orders (~1e-15 apart), and round the mean
    // to float: at most one float ulp apart (2^-23 relative, doubled for margin).
    EXPECT_NEAR(download_scalar(d_loss), loss, 2.4e-7 * std::fabs(loss)) << "n=" << n;

    for (GradMode mode : {GradMode::Overwrite, GradMode::Accumulate}) {
      const float scale = 2.5f;
      std::vector<float> expected = random_vector<float>(sz(n), 32);
      DeviceArray<float> d_dpred(sz(n));
      if (mode == GradMode::Accumulate) d_dpred.upload(expected);
      cpu::mse_backward<float>(n, pred.data(), target.data(), scale, expected.data(), mode);
      mse_backward(n, d_pred.get(), d_target.get(), scale, d_dpred.get(), mode, test_stream());
      const double factor = 2.0 * 2.5 / static_cast<double>(n);
      EXPECT_TRUE(all_close(d_dpred.download(), expected, kGradRelTol, grad_abs_tol(factor, mode)))
          << "n=" << n;
    }
  }
}

// ---- determinism --------------------------------------------------------------------------------

TEST(CudaLoss, ForwardLossesAreBitIdenticalOnRepeat) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<double> partials(sz(kReduceWorkspace));
  auto twice = [&](const char* what, const std::function<void(float*)>& forward) {
    DeviceArray<float> first(1), second(1);
    forward(first.get());
    partials.poison();  // stale partials must not matter
    forward(second.get());
    const float a = download_scalar(first), b = download_scalar(second);
    EXPECT_TRUE(same_bits(a, b)) << what << ": " << a << " vs " << b;
    EXPECT_TRUE(std::isfinite(a)) << what;
  };
  {
    const Shape s{1000, 10};  // 63 blocks: the two-pass path
    DeviceArray<float> logits(random_vector<float>(sz(s.rows * s.classes), 40, -4.0, 4.0));
    DeviceArray<float> targets(random_targets(s.rows, s.classes, 41));
    DeviceArray<int32_t> labels(random_labels(s.rows, s.classes, 42));
    DeviceArray<float> probs(sz(s.rows * s.classes));
    twice("softmax_cross_entropy", [&](float* loss) {
      softmax_cross_entropy_forward(s.rows, s.classes, logits.get(), labels.get(), probs.get(),
                                    loss, nullptr, partials.get(), test_stream());
    });
    twice("softmax_cross_entropy_targets", [&](float* loss) {
      softmax_cross_entropy_targets_forward(s.rows, s.classes, logits.get(), targets.get(),
                                            probs.get(), loss, partials.get(), test_stream());
    });
  }
  {
    const int64_t n = 100000;  // 25 blocks
    DeviceArray<float> a(bce_logits(n, 43)), b(random_vector<float>(sz(n), 44, 0.0, 1.0));
    twice("binary_cross_entropy", [&](float* loss) {
      binary_cross_entropy_forward(n, a.get(), b.get(), loss, partials.get(), test_stream());
    });
    twice("mse", [&](float* loss) {
      mse_forward(n, a.get(), b.get(), loss, partials.get(), test_stream());
    });
  }
}

}  // namespace
}  // namespace polytask::kernels::cuda
