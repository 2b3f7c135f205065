// MultiMNIST and MultiFashion (Sener & Koltun, "Multi-Task Learning as Multi-Objective
// Optimization", NeurIPS 2018): two images of one MNIST-family split overlaid on one canvas, a
// task per image ("left": the one at the top left, "right": the one down and to the right).
//
// The construction follows the authors' multi_mnist_loader.py (isl-org/MultiObjectiveOptimization,
// multi_task/loaders/, read_image_file): a 36x36 zero canvas, the left image at rows and
// columns 0..27, the right image at 6..33, the maximum of the two where they overlap (6..27).
// What we change: they then resize the canvas to 28x28; we keep the 36x36 canvas, so every
// pixel is a source pixel (no interpolation) and the model sees the images as they are. They
// draw the right image with an unseeded np.random.permutation, which can pick the left image
// itself; we draw it from a fixed seed, never the same row (multi_partner).
#pragma once

#include <cstdint>
#include <string>

#include "engine/dataset.h"

namespace polytask::datasets {

inline constexpr int64_t kMultiSourceSide = 28;  // MNIST-family images are 28x28
inline constexpr int64_t kMultiCanvasSide = 36;
inline constexpr int64_t kMultiRightOffset = 6;  // the right image's top-left corner: (6, 6)

// The two splits get different pairings.
enum class MultiSplit : uint64_t { Train = 0, Test = 1 };

// The row whose image is example `row`'s right image, in a split of `rows` rows (at least 2):
// uniform among the other rows, never `row` itself, a pure function of (split, row, rows) drawn
// with Philox from a fixed seed, so every load (and every run seed) builds the same pairs.
int64_t multi_partner(MultiSplit split, int64_t row, int64_t rows);

// The pairs of one source split with input "image" (M, 1, 28, 28) float32 and target "class"
// (M,) int32: input "image" (N, 1, 36, 36), targets "class" (= "left"), "left" and "right"
// (N,) int32, where example i overlays source row i (left) and row multi_partner(split, i, M)
// (right). N is M, or at most `limit` (0: all): the first pairs, whose right images still come
// from the whole split. Throws polytask::Error naming `origin` when the images are not 28x28
// grey or the split has fewer than two rows.
Dataset overlay_pairs(const Dataset& source, MultiSplit split, int64_t limit,
                      const std::string& origin);

}  // namespace polytask::datasets
