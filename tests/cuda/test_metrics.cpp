// CUDA metrics (kernels/cuda/metrics.cu) against the CPU reference: argmax ties (first maximum),
// NaN rows, -0 vs +0, labels out of range, every row-group width and both reduction paths; the
// flat binary count and absolute error; the device total accumulating across calls; and
// bit-identical repeats.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/metrics.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels::cuda {
namespace {

using polytask::testing::DeviceArray;
using polytask::testing::random_vector;
using polytask::testing::test_stream;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

size_t sz(int64_t v) { return static_cast<size_t>(v); }

struct Shape {
  int64_t rows, classes;
};

std::vector<Shape> argmax_shapes() {
  std::vector<Shape> shapes = {{1, 1},   {31, 2},    {33, 3},    {300, 7},  {128, 10}, {1000, 10},
                               {65, 20}, {128, 100}, {33, 1000}, {3, 2000}, {2, 4099}};
  if (!polytask::testing::kEmulated) {  // past the kReduceBlocks cap: too slow to emulate
    shapes.push_back({20000, 10});
    shapes.push_back({1100, 1100});
  }
  return shapes;
}

// Scores drawn from a few values so that tied maxima are common, a row of -0/+0 ties, and a
// row holding a NaN.
std::vector<float> tied_scores(const Shape& s, uint64_t seed) {
  const std::vector<double> u = random_vector<double>(sz(s.rows * s.classes), seed, 0.0, 1.0);
  std::vector<float> scores(u.size());
  for (size_t i = 0; i < u.size(); ++i)
    scores[i] = static_cast<float>(std::floor(u[i] * 3.0)) - 1.0f;
  if (s.rows > 3) {
    for (int64_t j = 0; j < s.classes; ++j) scores[sz(3 * s.classes + j)] = j % 2 ? 0.0f : -0.0f;
    scores[sz(2 * s.classes + s.classes - 1)] = kNaN;
  }
  return scores;
}

std::vector<int32_t> labels_for(const Shape& s, uint64_t seed) {
  const std::vector<double> u = random_vector<double>(sz(s.rows), seed, 0.0, 1.0);
  std::vector<int32_t> labels(sz(s.rows));
  // Mostly the first few classes (where the tied maxima are), some out of range.
  for (size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<int32_t>(std::floor(u[i] * 4.0)) % static_cast<int32_t>(s.classes);
  if (s.rows > 5) labels[5] = static_cast<int32_t>(s.classes);
  if (s.rows > 6) labels[6] = -1;
  return labels;
}

double download_scalar(const DeviceArray<double>& x) { return x.download()[0]; }

TEST(CudaMetrics, CountCorrectMatchesCpuAndAccumulates) {
  POLYTASK_REQUIRE_GPU();
  for (const Shape s : argmax_shapes()) {
    const std::vector<float> scores = tied_scores(s, 1);
    const std::vector<int32_t> labels = labels_for(s, 2);
    const int64_t expected =
        cpu::count_correct<float>(s.rows, s.classes, scores.data(), labels.data());
    DeviceArray<float> d_scores(scores);
    DeviceArray<int32_t> d_labels(labels);
    DeviceArray<double> total(std::vector<double>{5.0}), partials(sz(kReduceWorkspace));
    count_correct(s.rows, s.classes, d_scores.get(), d_labels.get(), total.get(), partials.get(),
                  test_stream());
    // Counts are integers, exact in double: equality.
    EXPECT_EQ(download_scalar(total), 5.0 + static_cast<double>(expected))
        << s.rows << "x" << s.classes;
    count_correct(s.rows, s.classes, d_scores.get(), d_labels.get(), total.get(), partials.get(),
                  test_stream());
    EXPECT_EQ(download_scalar(total), 5.0 + 2.0 * static_cast<double>(expected))
        << "adds, second call";
  }
}

TEST(CudaMetrics, CountCorrectTieAndNanRules) {
  POLYTASK_REQUIRE_GPU();
  // Row 0: tie between classes 1 and 3 → predicts 1. Row 1: -0 and +0 tie → predicts 0.
  // Row 2: a NaN → no prediction, even where the label matches the max. Row 3: all -inf →
  // predicts 0.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> scores = {0.0f,  2.0f, 1.0f,  2.0f,   //
                                     -0.0f, 0.0f, -1.0f, -2.0f,  //
                                     5.0f,  kNaN, 1.0f,  1.0f,   //
                                     -inf,  -inf, -inf,  -inf};
  for (const auto& [labels, expected] : std::vector<std::pair<std::vector<int32_t>, double>>{
           {{1, 0, 0, 0}, 3.0}, {{3, 1, 0, 1}, 0.0}}) {
    EXPECT_EQ(cpu::count_correct<float>(4, 4, scores.data(), labels.data()),
              static_cast<int64_t>(expected));
    DeviceArray<float> d_scores(scores);
    DeviceArray<int32_t> d_labels(labels);
    DeviceArray<double> total(std::vector<double>{0.0}), partials(sz(kReduceWorkspace));
    count_correct(4, 4, d_scores.get(), d_labels.get(), total.get(), partials.get(), test_stream());
    EXPECT_EQ(download_scalar(total), expected);
  }
}

TEST(CudaMetrics, CountCorrectTargetsMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (const Shape s : argmax_shapes()) {
    const std::vector<float> scores = tied_scores(s, 3);
    // Targets: tied and NaN rows of their own, from another seed.
    const std::vector<float> targets = tied_scores(s, 4);
    const int64_t expected =
        cpu::count_correct_targets<float>(s.rows, s.classes, scores.data(), targets.data());
    DeviceArray<float> d_scores(scores), d_targets(targets);
    DeviceArray<double> total(std::vector<double>{0.5}), partials(sz(kReduceWorkspace));
    count_correct_targets(s.rows, s.classes, d_scores.get(), d_targets.get(), total.get(),
                          partials.get(), test_stream());
    EXPECT_EQ(download_scalar(total), 0.5 + static_cast<double>(expected))
        << s.rows << "x" << s.classes;
  }
}

const std::vector<int64_t> kFlatSizes = {1, 31, 33, 128, 1000, 4099, 100000};

TEST(CudaMetrics, CountCorrectBinaryMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kFlatSizes) {
    std::vector<float> logits = random_vector<float>(sz(n), 5, -2.0, 2.0);
    std::vector<float> targets = random_vector<float>(sz(n), 6, 0.0, 1.0);
    // The thresholds' edges: logit 0 predicts 0, target 0.5 is 0, NaN is never correct.
    const float edge_logits[] = {0.0f, -0.0f, kNaN, 1.0f, 0.0f};
    const float edge_targets[] = {0.0f, 0.5f, 1.0f, kNaN, 0.95f};
    for (size_t k = 0; k < 5 && k < logits.size(); ++k) {
      logits[k] = edge_logits[k];
      targets[k] = edge_targets[k];
    }
    const int64_t expected = cpu::count_correct_binary<float>(n, logits.data(), targets.data());
    DeviceArray<float> d_logits(logits), d_targets(targets);
    DeviceArray<double> total(std::vector<double>{1.0}), partials(sz(kReduceWorkspace));
    count_correct_binary(n, d_logits.get(), d_targets.get(), total.get(), partials.get(),
                         test_stream());
    EXPECT_EQ(download_scalar(total), 1.0 + static_cast<double>(expected)) << "n=" << n;
  }
}

TEST(CudaMetrics, SumAbsErrorMatchesCpu) {
  POLYTASK_REQUIRE_GPU();
  for (int64_t n : kFlatSizes) {
    const std::vector<float> pred = random_vector<float>(sz(n), 7, -3.0, 3.0);
    const std::vector<float> target = random_vector<float>(sz(n), 8, -3.0, 3.0);
    const double expected = cpu::sum_abs_error<float>(n, pred.data(), target.data());
    DeviceArray<float> d_pred(pred), d_target(target);
    DeviceArray<double> total(std::vector<double>{2.0}), partials(sz(kReduceWorkspace));
    sum_abs_error(n, d_pred.get(), d_target.get(), total.get(), partials.get(), test_stream());
    // Each |p - t| is exact in double; the sums differ only in order: ~depth·2^-53 relative.
    EXPECT_NEAR(download_scalar(total), 2.0 + expected, 1e-13 * (2.0 + expected)) << "n=" << n;
  }
  // NaN propagates, as on the CPU.
  DeviceArray<float> pred(std::vector<float>{1.0f, kNaN}), target(std::vector<float>{0.0f, 0.0f});
  DeviceArray<double> total(std::vector<double>{0.0}), partials(sz(kReduceWorkspace));
  sum_abs_error(2, pred.get(), target.get(), total.get(), partials.get(), test_stream());
  EXPECT_TRUE(std::isnan(download_scalar(total)));
}

TEST(CudaMetrics, SumsAreBitIdenticalOnRepeat) {
  POLYTASK_REQUIRE_GPU();
  const int64_t n = 100000;  // 25 blocks: the two-pass path
  DeviceArray<float> pred(random_vector<float>(sz(n), 9)), target(random_vector<float>(sz(n), 10));
  DeviceArray<double> partials(sz(kReduceWorkspace));
  double results[2];
  for (double& r : results) {
    DeviceArray<double> total(std::vector<double>{0.0});
    partials.poison();  // stale partials must not matter
    sum_abs_error(n, pred.get(), target.get(), total.get(), partials.get(), test_stream());
    r = download_scalar(total);
  }
  EXPECT_EQ(std::memcmp(&results[0], &results[1], sizeof(double)), 0)
      << results[0] << " vs " << results[1];
}

TEST(CudaMetrics, EmptyBatchAddsNothing) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> x(1);
  DeviceArray<int32_t> labels(1);
  DeviceArray<double> total(std::vector<double>{3.0}), partials(sz(kReduceWorkspace));
  count_correct(0, 10, x.get(), labels.get(), total.get(), partials.get(), test_stream());
  count_correct_binary(0, x.get(), x.get(), total.get(), partials.get(), test_stream());
  sum_abs_error(0, x.get(), x.get(), total.get(), partials.get(), test_stream());
  EXPECT_EQ(download_scalar(total), 3.0);
}

}  // namespace
}  // namespace polytask::kernels::cuda
