#include "datasets/cifar10.h"

#include <array>
#include <filesystem>

#include "datasets/idx.h"

namespace polytask::datasets {

namespace fs = std::filesystem;

namespace {

constexpr size_t kPixels = 3 * 32 * 32;
constexpr size_t kRecord = 1 + kPixels;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool has_any_batch(const fs::path& dir) {
  if (is_file(dir / "test_batch.bin")) return true;
  for (int i = 1; i <= 5; ++i)
    if (is_file(dir / cat("data_batch_", i, ".bin"))) return true;
  return false;
}

}  // namespace

std::optional<Cifar10Files> find_cifar10_files(const std::string& dir) {
  fs::path where = dir;
  if (!has_any_batch(where)) {
    where /= "cifar-10-batches-bin";
    if (!has_any_batch(where)) return std::nullopt;
  }
  Cifar10Files files;
  files.dir = where.string();
  std::string missing;
  for (int i = 1; i <= 5; ++i) {
    const fs::path p = where / cat("data_batch_", i, ".bin");
    if (is_file(p))
      files.train.push_back(p.string());
    else
      missing += cat(missing.empty() ? "" : ", ", p.filename().string());
  }
  files.test = (where / "test_batch.bin").string();
  if (!is_file(files.test)) missing += cat(missing.empty() ? "" : ", ", "test_batch.bin");
  if (!missing.empty())
    fail(files.dir, ": incomplete CIFAR-10 binary data set: missing ", missing,
         " (expected data_batch_1.bin .. data_batch_5.bin and test_batch.bin)");
  return files;
}

Dataset read_cifar10_batches(const std::vector<std::string>& paths, int64_t limit) {
  if (paths.empty()) fail("read_cifar10_batches: no batch files given");
  std::vector<std::vector<uint8_t>> contents;
  int64_t total = 0;
  for (const auto& path : paths) {
    auto bytes = read_file_bytes(path).bytes;
    if (bytes.empty() || bytes.size() % kRecord != 0) {
      // CIFAR-100's records carry a coarse and a fine label: one byte more.
      const bool cifar100 = !bytes.empty() && bytes.size() % (kRecord + 1) == 0;
      fail(path, ": size ", bytes.size(), " bytes is not a whole number of ", kRecord,
           "-byte CIFAR-10 records (1 label byte + ", kPixels, " pixel bytes)",
           cifar100 ? "; it looks like CIFAR-100 (3074-byte records), which is not supported"
                    : "");
    }
    const size_t records = bytes.size() / kRecord;
    for (size_t r = 0; r < records; ++r)
      if (bytes[r * kRecord] >= 10)
        fail(path, ": record ", r, " (byte offset ", r * kRecord, ") has label ",
             int(bytes[r * kRecord]), ", expected 0..9");
    total += int64_t(records);
    contents.push_back(std::move(bytes));
  }
  const int64_t n = limit > 0 ? std::min(total, limit) : total;
  Tensor images = Tensor::empty({n, 3, 32, 32});
  Tensor labels = Tensor::empty({n}, DType::I32);
  std::array<float, 256> table{};
  for (int v = 0; v < 256; ++v) table[size_t(v)] = float(v) / 255.0f;
  float* px = images.data<float>();
  int32_t* lab = labels.data<int32_t>();
  int64_t row = 0;
  for (const auto& bytes : contents) {
    const size_t records = bytes.size() / kRecord;
    for (size_t r = 0; r < records && row < n; ++r, ++row) {
      const uint8_t* rec = bytes.data() + r * kRecord;
      lab[row] = rec[0];
      // The record's planes are already in (C, H, W) order.
      float* dst = px + size_t(row) * kPixels;
      for (size_t i = 0; i < kPixels; ++i) dst[i] = table[rec[1 + i]];
    }
  }
  return Dataset{{{"image", images}}, {{"class", labels}}};
}

}  // namespace polytask::datasets
