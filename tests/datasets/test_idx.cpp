// The IDX reader on files written here in the real format, raw and gzip, and on every way such
// a file can be broken: each error must be one line naming the file.
#include "datasets/idx.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "tests/datasets/dataset_fixtures.h"

namespace polytask::testing {
namespace {

using datasets::find_idx_files;
using datasets::load_idx_split;
using datasets::read_idx_images;
using datasets::read_idx_labels;

void expect_pattern_images(const Tensor& images, int64_t n, int64_t rows, int64_t cols) {
  ASSERT_EQ(images.shape(), (Shape{n, 1, rows, cols}));
  ASSERT_EQ(images.dtype(), DType::F32);
  const auto v = images.to_vector<float>();
  const size_t per = size_t(rows * cols);
  for (size_t i = 0; i < size_t(n); ++i)
    for (size_t p = 0; p < per; ++p)
      ASSERT_EQ(v[i * per + p], float(pattern_pixel(i, p)) / 255.0f) << "image " << i << " pixel " << p;
}

TEST(Idx, ReadsRawImagesExactly) {
  TempDir dir;
  write_bytes(dir.file("img"), idx_images(7, 3, 5, pattern_pixels(7, 15)));
  expect_pattern_images(read_idx_images(dir.file("img")), 7, 3, 5);
}

TEST(Idx, ReadsGzipImagesExactly) {
  TempDir dir;
  write_gzip(dir.file("img.gz"), idx_images(7, 3, 5, pattern_pixels(7, 15)));
  expect_pattern_images(read_idx_images(dir.file("img.gz")), 7, 3, 5);
}

TEST(Idx, DetectsGzipByMagicBytesNotByName) {
  TempDir dir;
  write_gzip(dir.file("compressed-without-suffix"), idx_images(2, 4, 4, pattern_pixels(2, 16)));
  write_bytes(dir.file("raw-named.gz"), idx_images(2, 4, 4, pattern_pixels(2, 16)));
  expect_pattern_images(read_idx_images(dir.file("compressed-without-suffix")), 2, 4, 4);
  expect_pattern_images(read_idx_images(dir.file("raw-named.gz")), 2, 4, 4);
}

TEST(Idx, PixelsSpanZeroToOne) {
  TempDir dir;
  write_bytes(dir.file("img"), idx_images(1, 1, 3, {0, 128, 255}));
  EXPECT_EQ(read_idx_images(dir.file("img")).to_vector<float>(),
            (std::vector<float>{0.0f, 128.0f / 255.0f, 1.0f}));
}

TEST(Idx, ReadsLabelsRawAndGzip) {
  TempDir dir;
  const std::vector<uint8_t> labels = {3, 0, 9, 1, 255};
  write_bytes(dir.file("lab"), idx_labels(labels));
  write_gzip(dir.file("lab.gz"), idx_labels(labels));
  for (const char* name : {"lab", "lab.gz"}) {
    const Tensor t = read_idx_labels(dir.file(name));
    EXPECT_EQ(t.shape(), (Shape{5}));
    EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{3, 0, 9, 1, 255})) << name;
  }
}

TEST(Idx, LimitKeepsTheFirstRows) {
  TempDir dir;
  write_bytes(dir.file("img"), idx_images(6, 2, 2, pattern_pixels(6, 4)));
  write_bytes(dir.file("lab"), idx_labels({5, 4, 3, 2, 1, 0}));
  const Dataset d = load_idx_split(dir.file("img"), dir.file("lab"), 4);
  expect_pattern_images(d.input("image"), 4, 2, 2);
  EXPECT_EQ(d.target("class").to_vector<int32_t>(), (std::vector<int32_t>{5, 4, 3, 2}));
}

TEST(Idx, TruncatedPayloadNamesFileAndByteCounts) {
  TempDir dir;
  auto bytes = idx_images(4, 3, 3, pattern_pixels(4, 9));  // 16 + 36 = 52 bytes
  bytes.resize(40);
  write_bytes(dir.file("img"), bytes);
  const auto message = error_message([&] { read_idx_images(dir.file("img")); });
  EXPECT_TRUE(contains_all(message, {dir.file("img"), "truncated", "52 bytes", "has 40 bytes",
                                     "byte offset 40", "inside image 2"}));
}

TEST(Idx, TruncatedGzipPayloadNamesFile) {
  TempDir dir;
  auto bytes = idx_images(4, 3, 3, pattern_pixels(4, 9));
  bytes.resize(45);
  write_gzip(dir.file("img.gz"), bytes);
  const auto message = error_message([&] { read_idx_images(dir.file("img.gz")); });
  EXPECT_TRUE(contains_all(message, {dir.file("img.gz"), "truncated", "52 bytes", "45 bytes",
                                     "decompressed"}));
}

TEST(Idx, CutGzipStreamNamesFile) {
  TempDir dir;
  write_gzip(dir.file("img.gz"), idx_images(50, 28, 28, pattern_pixels(50, 784)));
  auto compressed = read_bytes(dir.file("img.gz"));
  compressed.resize(compressed.size() / 2);
  write_bytes(dir.file("img.gz"), compressed);
  const auto message = error_message([&] { read_idx_images(dir.file("img.gz")); });
  EXPECT_TRUE(contains_all(message, {dir.file("img.gz"), "truncated gzip"}));
}

TEST(Idx, CorruptedMagicNamesFileAndOffset) {
  TempDir dir;
  auto bytes = idx_images(1, 2, 2, {1, 2, 3, 4});
  bytes[2] = 0x0d;  // float elements instead of unsigned bytes
  write_bytes(dir.file("img"), bytes);
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("img")); }),
                           {dir.file("img"), "bad magic number 0x00000d03", "byte offset 0",
                            "expected 0x00000803", "not unsigned byte"}));
  write_bytes(dir.file("text"), {'h', 'e', 'l', 'l', 'o', '\n'});
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_labels(dir.file("text")); }),
                           {dir.file("text"), "bad magic number", "not an IDX file"}));
}

TEST(Idx, LabelFileGivenAsImagesSaysSo) {
  TempDir dir;
  write_bytes(dir.file("lab"), idx_labels({1, 2, 3}));
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("lab")); }),
                           {dir.file("lab"), "0x00000801", "expected 0x00000803", "label file"}));
  write_bytes(dir.file("img"), idx_images(1, 1, 1, {7}));
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_labels(dir.file("img")); }),
                           {dir.file("img"), "expected 0x00000801", "image file"}));
}

TEST(Idx, WrongDimensionsNameFile) {
  TempDir dir;
  write_bytes(dir.file("zero"), idx_images(3, 0, 28, {}));
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("zero")); }),
                           {dir.file("zero"), "dimension 1 is 0", "byte offset 8"}));
  auto header_only = idx_images(3, 28, 28, {});
  header_only.resize(10);
  write_bytes(dir.file("short"), header_only);
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("short")); }),
                           {dir.file("short"), "truncated header", "16 bytes", "has 10"}));
  // Dims that do not match the payload: 2 images of 3x3 declared, 2 of 2x2 stored.
  write_bytes(dir.file("dims"), idx_images(2, 3, 3, pattern_pixels(2, 4)));
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("dims")); }),
                           {dir.file("dims"), "2 images of 3x3", "34 bytes", "has 24 bytes"}));
  write_bytes(dir.file("huge"), idx_images(0xffffffffu, 0xffffffffu, 0xffffffffu, {}));
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("huge")); }),
                           {dir.file("huge"), "implausible dimension", "byte offset 8"}));
  write_bytes(dir.file("empty"), {});
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("empty")); }),
                           {dir.file("empty"), "0 bytes", "too short"}));
}

TEST(Idx, TrailingGarbageNamesFileAndOffset) {
  TempDir dir;
  auto bytes = idx_images(2, 2, 2, pattern_pixels(2, 4));  // 24 bytes
  bytes.insert(bytes.end(), {0xde, 0xad, 0xbe});
  write_bytes(dir.file("img"), bytes);
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("img")); }),
                           {dir.file("img"), "3 unexpected trailing bytes", "byte offset 24"}));
  auto labels = idx_labels({1, 2});
  labels.push_back(0);
  write_gzip(dir.file("lab.gz"), labels);
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_labels(dir.file("lab.gz")); }),
                           {dir.file("lab.gz"), "1 unexpected trailing bytes", "byte offset 10"}));
}

TEST(Idx, CountMismatchNamesBothFiles) {
  TempDir dir;
  write_bytes(dir.file("img"), idx_images(3, 2, 2, pattern_pixels(3, 4)));
  write_bytes(dir.file("lab"), idx_labels({1, 2}));
  EXPECT_TRUE(contains_all(
      error_message([&] { load_idx_split(dir.file("img"), dir.file("lab"), 0); }),
      {dir.file("img"), "3 images", dir.file("lab"), "2 labels"}));
  // Also with a limit below both counts: the headers decide.
  EXPECT_THROW(load_idx_split(dir.file("img"), dir.file("lab"), 1), Error);
}

TEST(Idx, MissingFileNamesIt) {
  TempDir dir;
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.file("nope")); }),
                           {dir.file("nope"), "cannot open"}));
  EXPECT_TRUE(contains_all(error_message([&] { read_idx_images(dir.path().string()); }),
                           {dir.path().string(), "directory"}));
}

TEST(IdxFiles, FindsTheFourFilesRawOrGzip) {
  TempDir dir;
  EXPECT_FALSE(find_idx_files(dir.path().string()).has_value());
  write_bytes(dir.file("train-images-idx3-ubyte"), {});
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), {});
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), {});
  write_bytes(dir.file("t10k-images.idx3-ubyte"), {});
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), {});
  write_bytes(dir.file("README"), {});
  const auto files = find_idx_files(dir.path().string());
  ASSERT_TRUE(files.has_value());
  EXPECT_EQ(files->train_images, dir.file("train-images-idx3-ubyte"));  // raw beats .gz
  EXPECT_EQ(files->train_labels, dir.file("train-labels-idx1-ubyte.gz"));
  EXPECT_EQ(files->test_images, dir.file("t10k-images.idx3-ubyte"));
  EXPECT_EQ(files->test_labels, dir.file("t10k-labels-idx1-ubyte"));
}

TEST(IdxFiles, AcceptsAnEmnistStylePrefix) {
  TempDir dir;
  for (const char* name : {"emnist-digits-train-images-idx3-ubyte.gz",
                           "emnist-digits-train-labels-idx1-ubyte.gz",
                           "emnist-digits-test-images-idx3-ubyte.gz",
                           "emnist-digits-test-labels-idx1-ubyte.gz"})
    write_bytes(dir.file(name), {});
  const auto files = find_idx_files(dir.path().string());
  ASSERT_TRUE(files.has_value());
  EXPECT_EQ(files->test_labels, dir.file("emnist-digits-test-labels-idx1-ubyte.gz"));
  write_bytes(dir.file("emnist-letters-train-images-idx3-ubyte.gz"), {});
  EXPECT_TRUE(contains_all(error_message([&] { find_idx_files(dir.path().string()); }),
                           {dir.path().string(), "several files", "emnist-letters-train-images"}));
}

TEST(IdxFiles, IncompleteSetListsWhatIsMissing) {
  TempDir dir;
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), {});
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), {});
  EXPECT_TRUE(contains_all(error_message([&] { find_idx_files(dir.path().string()); }),
                           {dir.path().string(), "missing", "t10k-images-idx3-ubyte[.gz]",
                            "t10k-labels-idx1-ubyte[.gz]", "found 2 of the 4"}));
}

// ---- gzip files whose trailer lies ---------------------------------------------------------

// A 14-byte "gzip file": a valid 10-byte gzip header, then bytes that are no deflate stream,
// ending in a trailer that claims 4 GiB - 1 of data.
std::vector<uint8_t> bogus_gzip() {
  return {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0xff, 0xff};
}

// How much running `f` in a child process raises its peak resident memory (KiB), or -1.
long peak_rss_growth_kib(const std::function<void()>& f) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    try {
      f();
    } catch (...) {
    }
    ::getrusage(RUSAGE_SELF, &after);
    const long growth = after.ru_maxrss - before.ru_maxrss;
    const ssize_t written = ::write(fds[1], &growth, sizeof growth);
    ::_exit(written == sizeof growth ? 0 : 1);
  }
  ::close(fds[1]);
  long growth = -1;
  if (::read(fds[0], &growth, sizeof growth) != sizeof growth) growth = -1;
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return growth;
}

TEST(IdxGzip, ABogusTinyFileFailsFastNamingItOnce) {
  TempDir dir;
  write_bytes(dir.file("img.gz"), bogus_gzip());
  const auto message = error_message([&] { read_idx_images(dir.file("img.gz")); });
  EXPECT_TRUE(contains_all(message, {dir.file("img.gz"), "damaged gzip stream"}));
  // zlib's own message starts with the path too; it is said once.
  EXPECT_EQ(message.find(dir.file("img.gz")), message.rfind(dir.file("img.gz"))) << message;
}

TEST(IdxGzip, ABogusTinyFileAllocatesNextToNothing) {
  TempDir dir;
  write_bytes(dir.file("img.gz"), bogus_gzip());
  const long growth = peak_rss_growth_kib([&] { read_idx_images(dir.file("img.gz")); });
  ASSERT_GE(growth, 0);
  EXPECT_LT(growth, 8 * 1024) << "KiB for a 14-byte file";  // was 256 MiB
}

TEST(IdxGzip, TheFirstBufferIsBoundedByWhatTheFileCanHold) {
  using datasets::gzip_initial_capacity;
  // A real file: its trailer's size, plus one byte to see the end without growing.
  EXPECT_EQ(gzip_initial_capacity(10'000'000, 47'040'016), 47'040'017u);
  // A trailer claiming 4 GiB on a 14-byte file: deflate expands at most 1032:1.
  EXPECT_LE(gzip_initial_capacity(14, 0xffffffffu), 14u * 1032 + 1);
  // Never more than 256 MiB up front, nor less than 64 KiB for a file that can hold it.
  EXPECT_EQ(gzip_initial_capacity(1'000'000'000, 0xffffffffu), (size_t(1) << 28) + 1);
  EXPECT_EQ(gzip_initial_capacity(1'000'000, 0), (size_t(1) << 16) + 1);
  EXPECT_GE(gzip_initial_capacity(0, 5), 1u);
}

}  // namespace
}  // namespace polytask::testing
