// Seeded synthetic data sets that need no download.
#pragma once

#include <cstdint>

#include "engine/dataset.h"

namespace polytask::datasets {

// 28x28 grey "digits": each of 10 classes is a fixed pattern of Gaussian strokes (drawn from a
// seed shared by every call, so train and test sets agree), shifted by up to ±2 pixels,
// scaled and noised per image, pixels in [0, 1]. Input "image" (n, 1, 28, 28); targets
// "digit" (class 0..9) and "parity" (digit % 2), as I32 class indices.
Dataset synthetic_digits(int64_t n, uint64_t seed);

}  // namespace polytask::datasets
