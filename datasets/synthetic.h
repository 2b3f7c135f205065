// Seeded synthetic data sets that need no download. Each is a pure function of (n, seed): the
// same arguments give bit-identical data. What makes a class learnable is a fixed part of each
// set's definition (drawn from a constant seed), so train and test sets made with different
// seeds agree on it.
#pragma once

#include <cstdint>

#include "engine/dataset.h"

namespace polytask::datasets {

// 28x28 grey "digits": each of 10 classes is a fixed pattern of Gaussian strokes, shifted by up
// to ±2 pixels, scaled and noised per image, pixels in [0, 1]. Input "image" (n, 1, 28, 28);
// target "class" (n,) int32 in 0..9 (the parity head derives its labels with the "parity"
// rule, datasets/labels.h).
Dataset synthetic_digits(int64_t n, uint64_t seed);

// 28x28 colour images of a soft blob on a background. The class (0 red, 1 green, 2 blue) is the
// channel that dominates: it gets gain 1, the two others a random gain in [0.25, 0.6], so the
// ratio of channel means separates the classes while overall brightness varies freely (level in
// [0.2, 0.9] and blob size per image). Input "image" (n, 3, 28, 28) in [0, 1]; targets "class"
// (n,) int32 in 0..2 and "value" (n, 1) float32 = 0.5 · mean pixel + N(0, 0.02) noise.
Dataset synthetic_rgb(int64_t n, uint64_t seed);

// Two vector inputs, "a" (n, 50) and "b" (n, 100), standard normal. With x = [a, b] and a fixed
// random matrix W (10 x 150) and vector u (150): target "class" (n,) int32 = argmax(W x), a
// linearly separable 10-way label that needs both inputs, and "value" (n, 1) float32 =
// u·x / sqrt(150) + N(0, 0.1) noise.
Dataset synthetic_two_input(int64_t n, uint64_t seed);

}  // namespace polytask::datasets
