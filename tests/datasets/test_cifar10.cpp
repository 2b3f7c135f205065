// The CIFAR-10 binary reader on batch files written here record by record, and on broken files.
#include "datasets/cifar10.h"

#include <gtest/gtest.h>

#include "datasets/data.h"
#include "tests/datasets/dataset_fixtures.h"

namespace polytask::testing {
namespace {

using datasets::find_cifar10_files;
using datasets::read_cifar10_batches;

// Five training batches of 2, 1, 3, 1, 2 records and a test batch of 2: small, but every file
// is a real batch (a label byte, then the R, G and B planes).
void write_cifar(const fs::path& dir) {
  fs::create_directories(dir);
  const std::vector<std::vector<uint8_t>> train = {{0, 9}, {5}, {1, 2, 3}, {4}, {8, 7}};
  size_t first = 0;
  for (size_t b = 0; b < train.size(); ++b) {
    write_bytes((dir / cat("data_batch_", b + 1, ".bin")).string(), cifar_records(train[b], first));
    first += train[b].size();
  }
  write_bytes((dir / "test_batch.bin").string(), cifar_records({6, 3}, 100));
}

void expect_record(const Tensor& images, int64_t row, size_t pattern_row) {
  const float* px = images.data<float>() + row * 3072;
  for (size_t c = 0; c < 3; ++c)
    for (size_t y = 0; y < 32; ++y)
      for (size_t x = 0; x < 32; ++x) {
        const size_t p = c * 1024 + y * 32 + x;  // the file's plane order is the tensor's
        ASSERT_EQ(px[p], float(pattern_pixel(pattern_row, p)) / 255.0f)
            << "row " << row << " channel " << c << " y " << y << " x " << x;
      }
}

TEST(Cifar10, ReadsRecordsExactlyInFileOrder) {
  TempDir dir;
  write_cifar(dir.path());
  const auto files = find_cifar10_files(dir.path().string());
  ASSERT_TRUE(files.has_value());
  const Dataset train = read_cifar10_batches(files->train);
  ASSERT_EQ(train.input("image").shape(), (Shape{9, 3, 32, 32}));
  EXPECT_EQ(train.target("class").to_vector<int32_t>(),
            (std::vector<int32_t>{0, 9, 5, 1, 2, 3, 4, 8, 7}));
  for (int64_t r = 0; r < 9; ++r) expect_record(train.input("image"), r, size_t(r));
  const Dataset test = read_cifar10_batches({files->test});
  EXPECT_EQ(test.target("class").to_vector<int32_t>(), (std::vector<int32_t>{6, 3}));
  expect_record(test.input("image"), 1, 101);
}

TEST(Cifar10, LimitKeepsTheFirstRecords) {
  TempDir dir;
  write_cifar(dir.path());
  const Dataset d = read_cifar10_batches(find_cifar10_files(dir.path().string())->train, 4);
  EXPECT_EQ(d.target("class").to_vector<int32_t>(), (std::vector<int32_t>{0, 9, 5, 1}));
  expect_record(d.input("image"), 3, 3);
}

TEST(Cifar10, FindsTheBatchesInTheirFolderOrItsParent) {
  TempDir dir;
  write_cifar(dir.path() / "cifar-10-batches-bin");
  const auto files = find_cifar10_files(dir.path().string());
  ASSERT_TRUE(files.has_value());
  EXPECT_EQ(files->dir, (dir.path() / "cifar-10-batches-bin").string());
  EXPECT_EQ(files->train.size(), 5u);

  const auto splits = datasets::load_data(dir.path().string());
  EXPECT_EQ(splits.train.size(), 9);
  EXPECT_EQ(splits.test.size(), 2);
  EXPECT_NE(splits.description.find("CIFAR-10"), std::string::npos) << splits.description;
  EXPECT_NE(splits.description.find("9 train, 2 test images of (3, 32, 32)"), std::string::npos)
      << splits.description;
}

TEST(Cifar10, BadSizeNamesFileAndSize) {
  TempDir dir;
  write_cifar(dir.path());
  auto bytes = cifar_records({1, 2});
  bytes.pop_back();
  write_bytes(dir.file("data_batch_3.bin"), bytes);
  EXPECT_TRUE(contains_all(
      error_message([&] { read_cifar10_batches(find_cifar10_files(dir.path().string())->train); }),
      {dir.file("data_batch_3.bin"), "6145 bytes", "3073-byte"}));
  write_bytes(dir.file("test_batch.bin"), std::vector<uint8_t>(2 * 3074, 1));
  EXPECT_TRUE(contains_all(error_message([&] { read_cifar10_batches({dir.file("test_batch.bin")}); }),
                           {dir.file("test_batch.bin"), "6148 bytes", "CIFAR-100"}));
  write_bytes(dir.file("test_batch.bin"), {});
  EXPECT_TRUE(contains_all(error_message([&] { read_cifar10_batches({dir.file("test_batch.bin")}); }),
                           {dir.file("test_batch.bin"), "size 0 bytes"}));
}

TEST(Cifar10, BadLabelNamesFileAndRecord) {
  TempDir dir;
  write_bytes(dir.file("data_batch_1.bin"), cifar_records({1, 2, 10, 3}));
  EXPECT_TRUE(contains_all(error_message([&] { read_cifar10_batches({dir.file("data_batch_1.bin")}); }),
                           {dir.file("data_batch_1.bin"), "record 2", "byte offset 6146",
                            "label 10", "0..9"}));
}

TEST(Cifar10, IncompleteSetListsWhatIsMissing) {
  TempDir dir;
  write_cifar(dir.path());
  fs::remove(dir.path() / "data_batch_4.bin");
  fs::remove(dir.path() / "test_batch.bin");
  EXPECT_TRUE(contains_all(error_message([&] { find_cifar10_files(dir.path().string()); }),
                           {dir.path().string(), "missing data_batch_4.bin, test_batch.bin"}));
  TempDir empty;
  EXPECT_FALSE(find_cifar10_files(empty.path().string()).has_value());
}

}  // namespace
}  // namespace polytask::testing
