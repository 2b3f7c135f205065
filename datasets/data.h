// Data sources by name or directory, loaded into memory as train and test splits.
//
// Every source yields the same field names, so presets and config files can refer to them:
//   inputs:  "image" (N, C, H, W) float32 in [0, 1]; for the two-input set "a" (N, 50) and
//            "b" (N, 100);
//   targets: "class" (N,) int32; for synthetic regression sets "value" (N, 1) float32; for
//            multi: pairs also "left" and "right" (N,) int32 ("class" is "left").
// Task targets are then derived from these fields by datasets/labels.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/dataset.h"

namespace polytask::datasets {

// Where Debian's dataset-fashion-mnist package puts the IDX files: the main job's default.
inline constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST's classes by index, as Zalando publishes them.
inline constexpr const char* kFashionMnistClassNames[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

struct DataSplits {
  Dataset train, test;
  std::string description;  // one line: what was loaded, from where, how many, which shape
  // The names of the "class" field's values where the data set has them (Fashion-MNIST's
  // garments, CIFAR-10's objects, MNIST's digits); empty otherwise.
  std::vector<std::string> class_names;
  // Whose classes those are, for messages: "Fashion-MNIST garments", "MNIST digits", "KMNIST
  // characters", "CIFAR-10 objects"; empty when class_names is.
  std::string class_family;
};

struct LoadOptions {
  // Synthetic sources only: multi: pairs are one fixed draw whatever the seed, as the published
  // MultiMNIST is one fixed data set, so runs with different seeds train on the same pairs.
  uint64_t seed = 0;
  int64_t synthetic_train = 12000;  // synthetic sources only
  int64_t synthetic_test = 2000;
  int64_t limit = 0;  // keep the first rows of each split, at most this many (0: all), for quick
                      // runs; files are still validated whole
};

// `source` is one of:
//  - a directory with MNIST-family IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
//    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz): MNIST, Fashion-MNIST,
//    KMNIST, EMNIST;
//  - a directory with CIFAR-10 binary batches (data_batch_1.bin .. data_batch_5.bin,
//    test_batch.bin), or its parent holding cifar-10-batches-bin/;
//  - "multi:DIR", where DIR is such an MNIST-family directory: MultiMNIST (Sener & Koltun 2018),
//    MultiFashion from Fashion-MNIST, Multi<family> from the others. Example i of a split
//    overlays image i of the source split ("left", at the top left) and another image of the
//    same split ("right", 6 pixels down and right) on a 36x36 canvas, taking the brighter pixel
//    where they overlap (datasets/multi.h); targets "left", "right" and "class" (= "left"), the
//    source's class names. The splits are as large as the source's; `limit` keeps the first
//    pairs (their right images may come from anywhere in the split);
//  - "synthetic:digits" (28x28 grey digit-like images, 10 classes),
//    "synthetic:rgb" (28x28x3 images, 3 classes, regression value 0.5·mean pixel + noise),
//    "synthetic:two-input" (50-d and 100-d vectors, 10 classes, a regression value); plain
//    "synthetic" means "synthetic:digits". Synthetic test splits use seed + 1.
// Throws polytask::Error naming the file (and byte offset) for anything missing or corrupt.
DataSplits load_data(const std::string& source, const LoadOptions& options = {});

}  // namespace polytask::datasets
