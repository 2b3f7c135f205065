// Helpers shared by the dataset tests: a temporary directory, files in the real on-disk formats
// (IDX raw and gzip, CIFAR-10 records), and error-message assertions.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace polytask::testing {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "polytask-data-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The way the MNIST files are published: a gzip stream, written with zlib's gzwrite.
inline void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  if (!gz) throw std::runtime_error("cannot gzopen " + path);
  if (!bytes.empty() && gzwrite(gz, bytes.data(), unsigned(bytes.size())) != int(bytes.size()))
    throw std::runtime_error("gzwrite failed for " + path);
  if (gzclose(gz) != Z_OK) throw std::runtime_error("gzclose failed for " + path);
}

inline void push_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

// An IDX image file: magic 0x00000803, dims n, rows, cols (big-endian), then the pixels.
inline std::vector<uint8_t> idx_images(uint32_t n, uint32_t rows, uint32_t cols,
                                       const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> out;
  push_u32(out, 0x00000803);
  push_u32(out, n);
  push_u32(out, rows);
  push_u32(out, cols);
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

// An IDX label file: magic 0x00000801, dim n, then the labels.
inline std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> out;
  push_u32(out, 0x00000801);
  push_u32(out, uint32_t(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// Pixel p of image i: a pattern that covers 0 and 255 and differs between images.
inline uint8_t pattern_pixel(size_t i, size_t p) { return uint8_t((i * 37 + p * 11) % 256); }

inline std::vector<uint8_t> pattern_pixels(size_t n, size_t per_image) {
  std::vector<uint8_t> px(n * per_image);
  for (size_t i = 0; i < n; ++i)
    for (size_t p = 0; p < per_image; ++p) px[i * per_image + p] = pattern_pixel(i, p);
  return px;
}

// `labels.size()` CIFAR-10 records: label byte, then 3072 pixel bytes of pattern_pixel(first + i).
inline std::vector<uint8_t> cifar_records(const std::vector<uint8_t>& labels, size_t first = 0) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < labels.size(); ++i) {
    out.push_back(labels[i]);
    for (size_t p = 0; p < 3072; ++p) out.push_back(pattern_pixel(first + i, p));
  }
  return out;
}

// The message of the polytask::Error `f` throws ("" and a test failure if it throws none).
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a polytask::Error";
  return "";
}

inline ::testing::AssertionResult contains_all(const std::string& message,
                                               std::initializer_list<std::string> parts) {
  for (const auto& part : parts)
    if (message.find(part) == std::string::npos)
      return ::testing::AssertionFailure() << "'" << part << "' not in: " << message;
  if (message.find('\n') != std::string::npos)
    return ::testing::AssertionFailure() << "message is not one line: " << message;
  return ::testing::AssertionSuccess();
}

}  // namespace polytask::testing
