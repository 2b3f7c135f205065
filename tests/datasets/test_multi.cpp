// multi:DIR, MultiMNIST / MultiFashion pairs built from IDX files: the overlay pixel by pixel
// on hand-made images, the pairing, limits, determinism, errors, and the real Fashion-MNIST
// files when Debian's dataset-fashion-mnist package is installed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "datasets/data.h"
#include "datasets/multi.h"
#include "tests/datasets/dataset_fixtures.h"

namespace polytask::testing {
namespace {

using datasets::load_data;
using datasets::multi_partner;
using datasets::MultiSplit;

constexpr uint32_t kSide = 28;
constexpr size_t kPlane = kSide * kSide;

// An IDX directory with train and test images (28x28, `train_pixels` / `test_pixels` bytes,
// kPlane per image) and their labels.
void write_idx_dir(const fs::path& dir, const std::vector<uint8_t>& train_pixels,
                   const std::vector<uint8_t>& train_labels,
                   const std::vector<uint8_t>& test_pixels,
                   const std::vector<uint8_t>& test_labels) {
  fs::create_directories(dir);
  write_gzip((dir / "train-images-idx3-ubyte.gz").string(),
             idx_images(uint32_t(train_labels.size()), kSide, kSide, train_pixels));
  write_gzip((dir / "train-labels-idx1-ubyte.gz").string(), idx_labels(train_labels));
  write_bytes((dir / "t10k-images-idx3-ubyte").string(),
              idx_images(uint32_t(test_labels.size()), kSide, kSide, test_pixels));
  write_bytes((dir / "t10k-labels-idx1-ubyte").string(), idx_labels(test_labels));
}

std::string multi(const fs::path& dir) { return "multi:" + dir.string(); }

// The canvas pixel (y, x) as the paper builds it, from the source bytes: the left image at
// (0, 0), the right at (6, 6), the brighter where they overlap, 0 where neither is.
uint8_t expected_byte(const uint8_t* left, const uint8_t* right, int64_t y, int64_t x) {
  const uint8_t l = y < 28 && x < 28 ? left[y * 28 + x] : 0;
  const bool in_right = y >= 6 && y < 34 && x >= 6 && x < 34;
  const uint8_t r = in_right ? right[(y - 6) * 28 + (x - 6)] : 0;
  return std::max(l, r);
}

TEST(Multi, TwoFlatImagesOverlayAsInThePaper) {
  TempDir dir;
  std::vector<uint8_t> px(2 * kPlane);
  std::fill_n(px.begin(), kPlane, uint8_t(100));           // image 0: all 100
  std::fill_n(px.begin() + kPlane, kPlane, uint8_t(200));  // image 1: all 200
  write_idx_dir(dir.path(), px, {3, 8}, px, {3, 8});
  const auto s = load_data(multi(dir.path()));
  ASSERT_EQ(s.train.input("image").shape(), (Shape{2, 1, 36, 36}));
  // With two images each one's partner is the other.
  EXPECT_EQ(s.train.target("left").to_vector<int32_t>(), (std::vector<int32_t>{3, 8}));
  EXPECT_EQ(s.train.target("right").to_vector<int32_t>(), (std::vector<int32_t>{8, 3}));
  const float* canvas = s.train.input("image").data<float>();
  const auto at = [&](int64_t i, int64_t y, int64_t x) {
    return canvas[(i * 36 + y) * 36 + x] * 255.0f;
  };
  // Example 0: left 100 at rows/cols 0..27, right 200 at 6..33, 200 where they overlap.
  EXPECT_FLOAT_EQ(at(0, 0, 0), 100);
  EXPECT_FLOAT_EQ(at(0, 5, 27), 100);
  EXPECT_FLOAT_EQ(at(0, 27, 5), 100);
  EXPECT_FLOAT_EQ(at(0, 6, 6), 200);
  EXPECT_FLOAT_EQ(at(0, 27, 27), 200);
  EXPECT_FLOAT_EQ(at(0, 33, 33), 200);
  EXPECT_FLOAT_EQ(at(0, 0, 28), 0);   // right of the left image, above the right one
  EXPECT_FLOAT_EQ(at(0, 30, 2), 0);   // below the left image, left of the right one
  EXPECT_FLOAT_EQ(at(0, 34, 20), 0);  // the canvas' last two rows and columns stay empty
  EXPECT_FLOAT_EQ(at(0, 20, 35), 0);
  // Example 1: the brighter left image wins the overlap.
  EXPECT_FLOAT_EQ(at(1, 6, 6), 200);
  EXPECT_FLOAT_EQ(at(1, 27, 27), 200);
  EXPECT_FLOAT_EQ(at(1, 28, 28), 100);
  EXPECT_FLOAT_EQ(at(1, 33, 6), 100);
}

TEST(Multi, EveryPixelIsTheMaximumOfThePlacedImages) {
  TempDir dir;
  const std::vector<uint8_t> train_labels{1, 0, 4, 4, 2, 9, 7}, test_labels{5, 6, 3};
  const auto train_px = pattern_pixels(train_labels.size(), kPlane);
  std::vector<uint8_t> test_px(test_labels.size() * kPlane);
  for (size_t p = 0; p < test_px.size(); ++p) test_px[p] = pattern_pixel(p / kPlane + 50, p * 7);
  write_idx_dir(dir.path(), train_px, train_labels, test_px, test_labels);
  const auto s = load_data(multi(dir.path()));

  struct Split {
    const Dataset& data;
    MultiSplit split;
    const std::vector<uint8_t>& pixels;
    const std::vector<uint8_t>& labels;
  };
  for (const Split& c : {Split{s.train, MultiSplit::Train, train_px, train_labels},
                         Split{s.test, MultiSplit::Test, test_px, test_labels}}) {
    const int64_t n = int64_t(c.labels.size());
    ASSERT_EQ(c.data.input("image").shape(), (Shape{n, 1, 36, 36}));
    EXPECT_EQ(c.data.input("image").dtype(), DType::F32);
    const auto left = c.data.target("left").to_vector<int32_t>();
    const auto right = c.data.target("right").to_vector<int32_t>();
    EXPECT_EQ(c.data.target("class").to_vector<int32_t>(), left);
    const float* canvas = c.data.input("image").data<float>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t partner = multi_partner(c.split, i, n);
      ASSERT_NE(partner, i);
      EXPECT_EQ(left[size_t(i)], c.labels[size_t(i)]);
      EXPECT_EQ(right[size_t(i)], c.labels[size_t(partner)]);
      const uint8_t* l = c.pixels.data() + size_t(i) * kPlane;
      const uint8_t* r = c.pixels.data() + size_t(partner) * kPlane;
      for (int64_t y = 0; y < 36; ++y)
        for (int64_t x = 0; x < 36; ++x)
          ASSERT_EQ(canvas[(i * 36 + y) * 36 + x], float(expected_byte(l, r, y, x)) / 255.0f)
              << "example " << i << " pixel (" << y << ", " << x << ")";
    }
    c.data.validate();
  }
  EXPECT_EQ(s.class_names,
            (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(s.class_family, "MNIST digits");
  EXPECT_EQ(s.description,
            "MultiMNIST: 7 train / 3 test 36x36 pairs of MNIST images from " + dir.path().string());
}

TEST(Multi, PartnerIsAnotherRowOfTheSplit) {
  for (const int64_t rows : {2, 3, 10, 1000})
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t p = multi_partner(MultiSplit::Train, row, rows);
      ASSERT_NE(p, row);
      ASSERT_GE(p, 0);
      ASSERT_LT(p, rows);
    }
  EXPECT_EQ(multi_partner(MultiSplit::Test, 0, 2), 1);
  EXPECT_EQ(multi_partner(MultiSplit::Test, 1, 2), 0);
  // Spread over the split, and drawn apart for the two splits.
  std::set<int64_t> partners;
  int64_t same = 0;
  for (int64_t row = 0; row < 1000; ++row) {
    partners.insert(multi_partner(MultiSplit::Train, row, 1000));
    same +=
        multi_partner(MultiSplit::Train, row, 1000) == multi_partner(MultiSplit::Test, row, 1000);
  }
  EXPECT_GT(partners.size(), 550u);  // a uniform draw hits about 632 of 1000
  EXPECT_LT(same, 10);
  EXPECT_TRUE(contains_all(error_message([] { multi_partner(MultiSplit::Train, 0, 1); }),
                           {"at least two"}));
}

TEST(Multi, LoadsAreDeterministicWhateverTheSeed) {
  TempDir dir;
  const std::vector<uint8_t> labels{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1};
  const auto px = pattern_pixels(labels.size(), kPlane);
  write_idx_dir(dir.path(), px, labels, px, labels);
  const auto a = load_data(multi(dir.path()));
  const auto b = load_data(multi(dir.path()), {.seed = 1234});
  for (const auto& [x, y] : {std::pair{&a.train, &b.train}, std::pair{&a.test, &b.test}}) {
    EXPECT_EQ(x->input("image").to_vector<float>(), y->input("image").to_vector<float>());
    EXPECT_EQ(x->target("right").to_vector<int32_t>(), y->target("right").to_vector<int32_t>());
  }
  // Same source rows, different pairs in the two splits.
  EXPECT_NE(a.train.target("right").to_vector<int32_t>(),
            a.test.target("right").to_vector<int32_t>());
}

TEST(Multi, LimitKeepsTheFirstPairs) {
  TempDir dir;
  const std::vector<uint8_t> labels{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const auto px = pattern_pixels(labels.size(), kPlane);
  const auto path = dir.path() / "fashion";  // the family is read from the path
  write_idx_dir(path, px, labels, pattern_pixels(4, kPlane), {0, 1, 2, 3});
  const auto all = load_data(multi(path));
  const auto first = load_data(multi(path), {.limit = 3});
  EXPECT_EQ(first.train.size(), 3);
  EXPECT_EQ(first.test.size(), 3);
  EXPECT_EQ(first.train.input("image").to_vector<float>(),
            all.train.input("image").slice(0, 3).to_vector<float>());
  // The right images still come from the whole split.
  EXPECT_EQ(first.train.target("right").to_vector<int32_t>(),
            all.train.target("right").slice(0, 3).to_vector<int32_t>());
  EXPECT_EQ(first.description,
            "MultiFashion: 3 train / 3 test 36x36 pairs of Fashion-MNIST images from " +
                path.string() + " (at most 3 per split)");
  EXPECT_EQ(first.class_names.front(), "T-shirt/top");
}

TEST(Multi, ErrorsNameThePath) {
  EXPECT_TRUE(contains_all(error_message([] { load_data("multi:"); }),
                           {"multi:", "no directory given", "train-images-idx3-ubyte"}));
  EXPECT_TRUE(contains_all(error_message([] { load_data("multi:/nonexistent/polytask-multi"); }),
                           {"/nonexistent/polytask-multi", "no such directory", "multi:DIR"}));
  TempDir empty;
  EXPECT_TRUE(contains_all(error_message([&] { load_data(multi(empty.path())); }),
                           {empty.path().string(), "no MNIST-family IDX files", "multi:DIR"}));
  write_bytes(empty.file("plain"), {1});
  EXPECT_TRUE(contains_all(error_message([&] { load_data(multi(empty.file("plain"))); }),
                           {empty.file("plain"), "not a directory"}));

  TempDir cifar;
  for (int b = 1; b <= 5; ++b)
    write_bytes(cifar.file(cat("data_batch_", b, ".bin")), cifar_records({1}));
  write_bytes(cifar.file("test_batch.bin"), cifar_records({2}));
  ASSERT_NO_THROW(load_data(cifar.path().string()));
  EXPECT_TRUE(contains_all(error_message([&] { load_data(multi(cifar.path())); }),
                           {cifar.path().string(), "CIFAR-10", "not MNIST-family"}));

  TempDir small;  // 4x3 images: not the 28x28 the offsets are for
  write_bytes(small.file("train-images-idx3-ubyte"), idx_images(2, 4, 3, pattern_pixels(2, 12)));
  write_bytes(small.file("train-labels-idx1-ubyte"), idx_labels({1, 2}));
  write_bytes(small.file("t10k-images-idx3-ubyte"), idx_images(2, 4, 3, pattern_pixels(2, 12)));
  write_bytes(small.file("t10k-labels-idx1-ubyte"), idx_labels({1, 2}));
  EXPECT_TRUE(contains_all(error_message([&] { load_data(multi(small.path())); }),
                           {small.file("train-images-idx3-ubyte"), "28x28", "(2, 1, 4, 3)"}));

  TempDir single;  // one test image has no partner
  write_idx_dir(single.path(), pattern_pixels(2, kPlane), {1, 2}, pattern_pixels(1, kPlane), {3});
  EXPECT_TRUE(
      contains_all(error_message([&] { load_data(multi(single.path())); }),
                   {single.file("t10k-images-idx3-ubyte"), "at least two images", "has 1"}));
}

TEST(Multi, RealFashionMnistIsMultiFashion) {
  const std::string dir = datasets::kDefaultDataDir;
  if (!fs::is_directory(dir))
    GTEST_SKIP() << dir << " is absent (install the Debian package dataset-fashion-mnist)";
  const auto start = std::chrono::steady_clock::now();
  const auto s = load_data("multi:" + dir);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("load_seconds", std::to_string(seconds));
  std::printf("built 70000 MultiFashion pairs in %.3f s\n", seconds);
  EXPECT_EQ(
      s.description,
      "MultiFashion: 60000 train / 10000 test 36x36 pairs of Fashion-MNIST images from " + dir);
  EXPECT_EQ(s.class_family, "Fashion-MNIST garments");
  ASSERT_EQ(s.train.input("image").shape(), (Shape{60000, 1, 36, 36}));
  ASSERT_EQ(s.test.input("image").shape(), (Shape{10000, 1, 36, 36}));
  // Reading, converting and overlaying: about a second on an idle machine; room for a busy host.
  EXPECT_LT(seconds, 6.0);

  // Spot checks against the plain source.
  const auto source = load_data(dir);
  const auto classes = source.test.target("class").to_vector<int32_t>();
  const auto right = s.test.target("right").to_vector<int32_t>();
  EXPECT_EQ(s.test.target("left").to_vector<int32_t>(), classes);
  for (int64_t i : {0, 1, 4321, 9999}) {
    EXPECT_EQ(right[size_t(i)], classes[size_t(multi_partner(MultiSplit::Test, i, 10000))]);
    // The left image's top-left 6x28 band is the source's, untouched by the right image.
    const float* canvas = s.test.input("image").data<float>() + i * 36 * 36;
    const float* image = source.test.input("image").data<float>() + i * 28 * 28;
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 28; ++x) ASSERT_EQ(canvas[y * 36 + x], image[y * 28 + x]);
  }
}

}  // namespace
}  // namespace polytask::testing
