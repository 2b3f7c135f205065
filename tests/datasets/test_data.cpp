// load_data: dispatch by source, limits, descriptions, errors for missing data, and the real
// Fashion-MNIST files of Debian's dataset-fashion-mnist package when they are installed.
#include "datasets/data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "tests/datasets/dataset_fixtures.h"

namespace polytask::testing {
namespace {

using datasets::load_data;
using datasets::LoadOptions;

TEST(LoadData, RealFashionMnist) {
  const std::string dir = datasets::kDefaultDataDir;
  if (!fs::is_directory(dir))
    GTEST_SKIP() << dir << " is absent (install the Debian package dataset-fashion-mnist)";
  const auto start = std::chrono::steady_clock::now();
  const auto s = load_data(dir);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("load_seconds", std::to_string(seconds));
  std::printf("loaded 70000 Fashion-MNIST images in %.3f s\n", seconds);
  ASSERT_EQ(s.train.size(), 60000);
  ASSERT_EQ(s.test.size(), 10000);
  for (const Dataset* d : {&s.train, &s.test}) {
    EXPECT_EQ(d->input("image").shape().sample(), (Shape{1, 28, 28}));
    const auto cls = d->target("class").to_vector<int32_t>();
    std::vector<int64_t> per_class(10, 0);
    for (int32_t c : cls) {
      ASSERT_GE(c, 0);
      ASSERT_LT(c, 10);
      ++per_class[size_t(c)];
    }
    // Fashion-MNIST is balanced: 6000 / 1000 of each class.
    for (int64_t count : per_class) EXPECT_EQ(count, d->size() / 10);
    const float* px = d->input("image").data<float>();
    const auto [lo, hi] = std::minmax_element(px, px + d->input("image").numel());
    EXPECT_EQ(*lo, 0.0f);
    EXPECT_EQ(*hi, 1.0f);
  }
  EXPECT_EQ(s.description, "Fashion-MNIST-style IDX from " + dir +
                               ": 60000 train, 10000 test images of (1, 28, 28), 10 classes");
  EXPECT_EQ(s.class_names.front(), "T-shirt/top");
  EXPECT_EQ(s.class_family, "Fashion-MNIST garments");
  // Reading whole files and converting in one loop: well under a second on an idle machine;
  // the bound leaves room for a busy CI host.
  EXPECT_LT(seconds, 3.0);

  const auto quick = load_data(dir, {.limit = 500});
  EXPECT_EQ(quick.train.size(), 500);
  EXPECT_EQ(quick.test.size(), 500);
  EXPECT_EQ(quick.train.input("image").to_vector<float>(),
            s.train.input("image").slice(0, 500).to_vector<float>());
}

TEST(LoadData, IdxDirectoryOfGzipFiles) {
  TempDir dir;
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(5, 4, 3, pattern_pixels(5, 12)));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels({1, 0, 4, 4, 2}));
  write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_images(2, 4, 3, pattern_pixels(2, 12)));
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_labels({3, 3}));
  const auto s = load_data(dir.path().string());
  EXPECT_EQ(s.train.input("image").shape(), (Shape{5, 1, 4, 3}));
  EXPECT_EQ(s.train.target("class").to_vector<int32_t>(), (std::vector<int32_t>{1, 0, 4, 4, 2}));
  EXPECT_EQ(s.test.target("class").to_vector<int32_t>(), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(s.description, "MNIST-style IDX from " + dir.path().string() +
                               ": 5 train, 2 test images of (1, 4, 3), 5 classes");
  EXPECT_EQ(s.class_family, "MNIST digits");
  const auto limited = load_data(dir.path().string(), {.limit = 3});
  EXPECT_EQ(limited.train.size(), 3);
  EXPECT_EQ(limited.test.size(), 2);
  EXPECT_NE(limited.description.find("at most 3 per split"), std::string::npos);
}

TEST(LoadData, CorruptFileInADirectoryIsNamed) {
  TempDir dir;
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(5, 4, 3, pattern_pixels(5, 12)));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels({1, 0, 4, 4}));
  write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_images(2, 4, 3, pattern_pixels(2, 12)));
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_labels({3, 3}));
  EXPECT_TRUE(contains_all(error_message([&] { load_data(dir.path().string()); }),
                           {dir.file("train-labels-idx1-ubyte.gz"), "4 labels", "5 images"}));
}

TEST(LoadData, MissingDirectoryListsWhatWasLookedFor) {
  const auto message = error_message([] { load_data("/nonexistent/polytask-data"); });
  EXPECT_TRUE(contains_all(message, {"/nonexistent/polytask-data", "no such directory",
                                     "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                                     "data_batch_1.bin", "test_batch.bin", "cifar-10-batches-bin",
                                     "synthetic:digits"}));
  TempDir empty;
  EXPECT_TRUE(contains_all(error_message([&] { load_data(empty.path().string()); }),
                           {empty.path().string(), "no data set found", "train-images-idx3-ubyte"}));
  write_bytes(empty.file("plain"), {1});
  EXPECT_TRUE(contains_all(error_message([&] { load_data(empty.file("plain")); }),
                           {empty.file("plain"), "not a directory"}));
}

TEST(LoadData, SyntheticSources) {
  const LoadOptions options{.seed = 9, .synthetic_train = 40, .synthetic_test = 10};
  const auto digits = load_data("synthetic:digits", options);
  EXPECT_EQ(digits.train.input("image").shape(), (Shape{40, 1, 28, 28}));
  EXPECT_EQ(digits.test.size(), 10);
  EXPECT_NO_THROW(digits.train.target("class"));
  EXPECT_NE(digits.description.find("synthetic:digits"), std::string::npos);
  EXPECT_EQ(load_data("synthetic", options).train.input("image").to_vector<float>(),
            digits.train.input("image").to_vector<float>());

  const auto rgb = load_data("synthetic:rgb", options);
  EXPECT_EQ(rgb.train.input("image").shape(), (Shape{40, 3, 28, 28}));
  EXPECT_EQ(rgb.train.target("value").shape(), (Shape{40, 1}));

  const auto two = load_data("synthetic:two-input", options);
  EXPECT_EQ(two.train.input("a").shape(), (Shape{40, 50}));
  EXPECT_EQ(two.train.input("b").shape(), (Shape{40, 100}));
  EXPECT_NE(two.description.find("a (50,), b (100,)"), std::string::npos) << two.description;
  // Train and test come from different seeds.
  EXPECT_NE(two.train.input("a").slice(0, 10).to_vector<float>(), two.test.input("a").to_vector<float>());

  LoadOptions limited = options;
  limited.limit = 7;
  EXPECT_EQ(load_data("synthetic:rgb", limited).train.size(), 7);
  EXPECT_EQ(load_data("synthetic:rgb", limited).test.size(), 7);

  EXPECT_TRUE(contains_all(error_message([&] { load_data("synthetic:cats", options); }),
                           {"synthetic:cats", "synthetic:digits, synthetic:rgb, synthetic:two-input"}));
}

}  // namespace
}  // namespace polytask::testing
