// The IDX format of MNIST, Fashion-MNIST, KMNIST and EMNIST: a big-endian header (magic
// 0x00000803 for uint8 images of 3 dimensions, 0x00000801 for uint8 labels of 1), then the
// payload row-major, each file raw or gzip-compressed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/dataset.h"

namespace polytask::datasets {

struct FileBytes {
  std::vector<uint8_t> bytes;
  bool gzip = false;  // decompressed from a gzip stream: byte offsets count decompressed bytes
};

// The whole file, decompressed when it starts with the gzip magic bytes 1f 8b (whatever its
// name). Reading it at once and converting afterwards is what keeps 60,000 images under a
// second. Throws polytask::Error naming the file when it cannot be opened or is a damaged gzip.
FileBytes read_file_bytes(const std::string& path);

// The buffer read_file_bytes first allocates for a gzip file of `compressed_bytes` whose
// trailer claims `trailer_claim` decompressed bytes: the claim, but never more than the file
// can decompress to nor 256 MiB (the buffer then grows with the data actually decompressed),
// so a damaged or hostile trailer costs nothing. Exposed for tests.
size_t gzip_initial_capacity(uint64_t compressed_bytes, uint64_t trailer_claim);

// (N, 1, rows, cols) float32 in [0, 1] (pixel / 255). The whole file is validated, but only its
// first `limit` images are converted (0: all).
Tensor read_idx_images(const std::string& path, int64_t limit = 0);
// (N,) int32.
Tensor read_idx_labels(const std::string& path, int64_t limit = 0);

struct IdxFiles {
  std::string train_images, train_labels, test_images, test_labels;
};

// The four files of an IDX directory: train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (or test-*, or with a '.' before idx as
// some mirrors spell it), each raw or .gz, optionally with a prefix (EMNIST's "emnist-digits-").
// nullopt when the directory holds none of them; Error listing what is missing when it holds
// only some, or naming the candidates when a prefix is ambiguous.
std::optional<IdxFiles> find_idx_files(const std::string& dir);

// Input "image" and target "class" from an image file and its label file, whose counts must
// agree. At most `limit` rows (0: all).
Dataset load_idx_split(const std::string& images_path, const std::string& labels_path,
                       int64_t limit = 0);

}  // namespace polytask::datasets
