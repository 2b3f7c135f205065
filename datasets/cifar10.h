// The CIFAR-10 binary version (cifar-10-binary.tar.gz): data_batch_1.bin .. data_batch_5.bin
// for training, test_batch.bin for testing. Each record is one label byte (0..9) then 3072
// pixel bytes: the 32x32 red plane, then green, then blue, rows top to bottom.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/dataset.h"

namespace polytask::datasets {

inline constexpr const char* kCifar10ClassNames[10] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

struct Cifar10Files {
  std::string dir;                 // where the batches are
  std::vector<std::string> train;  // data_batch_1.bin .. data_batch_5.bin
  std::string test;                // test_batch.bin
};

// The batch files in `dir`, or in `dir`/cifar-10-batches-bin (the tarball's folder). nullopt
// when neither holds any batch; Error listing what is missing when only some are there.
std::optional<Cifar10Files> find_cifar10_files(const std::string& dir);

// Input "image" (N, 3, 32, 32) float32 in [0, 1] and target "class" (N,) int32 from the records
// of `paths` in order, keeping the first `limit` (0: all). Every file is validated whole: its
// size must be a whole number of 3073-byte records and every label below 10; errors name the
// file (and the record).
Dataset read_cifar10_batches(const std::vector<std::string>& paths, int64_t limit = 0);

}  // namespace polytask::datasets
