// Batch gathers and the epoch's device-side sums against their CPU definitions: gathers copy
// rows exactly (bytes normalised into the very floats the readers produce), the statistics
// kernels apply the same function the host applies.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/epoch_stats.h"
#include "kernels/gather.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

namespace polytask::kernels {
namespace {

using testing::DeviceArray;
using testing::test_stream;

std::vector<int32_t> shuffled_rows(int64_t n, int64_t size, uint64_t seed) {
  std::vector<int32_t> rows(static_cast<size_t>(size));
  std::iota(rows.begin(), rows.end(), 0);
  std::shuffle(rows.begin(), rows.end(), std::mt19937_64(seed));
  rows.resize(static_cast<size_t>(n));
  return rows;
}

TEST(CudaGather, RowsMatchTheCpuExactly) {
  POLYTASK_REQUIRE_GPU();
  for (const auto [n, size, row] : {std::array<int64_t, 3>{1, 1, 1}, {5, 17, 33},
                                    {128, 300, 784}, {37, 50, 3}}) {
    SCOPED_TRACE(::testing::Message() << n << " of " << size << " rows of " << row);
    const auto rows = shuffled_rows(n, size, uint64_t(n + row));
    const auto src = testing::random_vector<float>(size_t(size * row), 3);
    std::vector<float> expected(size_t(n * row));
    cpu::gather_rows<float>(n, row, rows.data(), src.data(), expected.data());
    DeviceArray<int32_t> d_rows(rows);
    DeviceArray<float> d_src(src), d_dst(size_t(n * row));  // d_dst starts NaN-poisoned
    cuda::gather_rows<float>(n, row, d_rows.get(), d_src.get(), d_dst.get(), test_stream());
    EXPECT_EQ(d_dst.download(), expected);

    std::vector<int32_t> labels(size_t(size * row));
    std::iota(labels.begin(), labels.end(), -7);
    std::vector<int32_t> expected_labels(size_t(n * row));
    cpu::gather_rows<int32_t>(n, row, rows.data(), labels.data(), expected_labels.data());
    DeviceArray<int32_t> d_labels(labels), d_label_dst(size_t(n * row));
    cuda::gather_rows<int32_t>(n, row, d_rows.get(), d_labels.get(), d_label_dst.get(),
                               test_stream());
    EXPECT_EQ(d_label_dst.download(), expected_labels);
  }
}

TEST(CudaGather, NormalisedBytesAreTheReadersFloats) {
  POLYTASK_REQUIRE_GPU();
  const int64_t size = 40, row = 257, n = 23;
  std::vector<uint8_t> bytes(size_t(size * row));
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t((i * 37) % 256);  // every value
  const auto rows = shuffled_rows(n, size, 9);
  std::vector<float> expected(size_t(n * row));
  cpu::gather_rows_normalized(n, row, rows.data(), bytes.data(), 255.0f, expected.data());
  for (int64_t e = 0; e < row; ++e)  // the readers' table: float(v) / 255.0f
    ASSERT_EQ(expected[size_t(e)], float(bytes[size_t(rows[0] * row + e)]) / 255.0f);
  DeviceArray<int32_t> d_rows(rows);
  DeviceArray<uint8_t> d_bytes(bytes);
  DeviceArray<float> d_dst(size_t(n * row));
  cuda::gather_rows_normalized(n, row, d_rows.get(), d_bytes.get(), 255.0f, d_dst.get(),
                               test_stream());
  EXPECT_EQ(d_dst.download(), expected) << "bit for bit: IEEE division on both sides";
}

TEST(CudaEpochStats, GramStatisticsMatchTheHost) {
  POLYTASK_REQUIRE_GPU();
  const int tasks = 3;
  const GramStatisticsLayout at{tasks};
  // Three steps: ordinary, one task with a zero gradient, one non-finite.
  const std::vector<std::vector<double>> grams = {
      {4, -1, 0.5, -1, 9, 2, 0.5, 2, 1}, {0, 0, 0, 0, 2, -1, 0, -1, 3},
      {1, 0, 0, 0, NAN, 0, 0, 0, 1}};
  std::vector<double> host(size_t(at.size()), 0.0);
  host[size_t(at.first_nonfinite_task())] = -1;
  DeviceArray<double> d_sums(host), d_gram(size_t(tasks * tasks));
  for (const auto& g : grams) {
    add_gram_statistics(tasks, g.data(), host.data());
    d_gram.upload(g);
    cuda::add_gram_statistics(tasks, d_gram.get(), d_sums.get(), test_stream());
  }
  const auto device = d_sums.download();
  ASSERT_EQ(device.size(), host.size());
  for (size_t k = 0; k < host.size(); ++k)
    if (!(std::isnan(host[k]) && std::isnan(device[k]))) {
      EXPECT_EQ(device[k], host[k]) << k;
    }
  EXPECT_EQ(host[size_t(at.nonfinite_steps())], 1.0);
  EXPECT_EQ(host[size_t(at.first_nonfinite_task())], 1.0);
  EXPECT_EQ(host[size_t(at.pair_steps()) + 1], 1.0) << "(0, 1): only the first step has both";
  EXPECT_EQ(host[size_t(at.conflicts()) + 1], 1.0) << "<g0, g1> = -1 < 0";
}

TEST(CudaEpochStats, LossSumsAndTheFirstBadLabel) {
  POLYTASK_REQUIRE_GPU();
  DeviceArray<float> loss(std::vector<float>{0.25f});
  DeviceArray<double> total(std::vector<double>{1.0});
  cuda::add_scaled(loss.get(), 128.0, total.get(), test_stream());
  cuda::add_scaled(loss.get(), 3.0, total.get(), test_stream());
  EXPECT_EQ(total.download(), std::vector<double>{1.0 + 32.0 + 0.75});

  DeviceArray<int> bad(std::vector<int>{-1});
  DeviceArray<double> first(std::vector<double>{-1, -1});
  cuda::keep_first_bad_label(bad.get(), 4, first.get(), test_stream());
  EXPECT_EQ(first.download(), (std::vector<double>{-1, -1})) << "no bad label yet";
  bad.upload({17});
  cuda::keep_first_bad_label(bad.get(), 5, first.get(), test_stream());
  bad.upload({2});
  cuda::keep_first_bad_label(bad.get(), 6, first.get(), test_stream());
  EXPECT_EQ(first.download(), (std::vector<double>{5, 17})) << "the first one is kept";
}

}  // namespace
}  // namespace polytask::kernels
