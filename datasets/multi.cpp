#include "datasets/multi.h"

#include <algorithm>

#include "kernels/error.h"
#include "kernels/philox.h"

namespace polytask::datasets {

namespace {

// The pairing's seed: any fixed number would do; this one spells "MultiMNI".
constexpr uint64_t kPairingSeed = 0x4d756c74694d4e49ULL;

void place_left(const float* image, float* canvas) {
  for (int64_t y = 0; y < kMultiSourceSide; ++y)
    std::copy_n(image + y * kMultiSourceSide, kMultiSourceSide, canvas + y * kMultiCanvasSide);
}

// After place_left: the right image down and to the right, the brighter pixel where they overlap.
void place_right(const float* image, float* canvas) {
  for (int64_t y = 0; y < kMultiSourceSide; ++y) {
    const float* from = image + y * kMultiSourceSide;
    float* to = canvas + (y + kMultiRightOffset) * kMultiCanvasSide + kMultiRightOffset;
    for (int64_t x = 0; x < kMultiSourceSide; ++x) to[x] = std::max(to[x], from[x]);
  }
}

}  // namespace

int64_t multi_partner(MultiSplit split, int64_t row, int64_t rows) {
  if (rows < 2 || row < 0 || row >= rows)
    fail("multi_partner: row ", row, " of ", rows, " (a pair needs at least two rows)");
  const kernels::Philox4x32 block =
      kernels::philox_block(kPairingSeed, uint64_t(split), uint64_t(row));
  const uint64_t draw = uint64_t(block.v[0]) << 32 | block.v[1];
  // One of the rows - 1 others, uniformly (the modulo bias is below rows / 2^64).
  return (row + 1 + int64_t(draw % uint64_t(rows - 1))) % rows;
}

Dataset overlay_pairs(const Dataset& source, MultiSplit split, int64_t limit,
                      const std::string& origin) {
  const Tensor& images = source.input("image");
  const Tensor& classes = source.target("class");
  const Shape expected{images.dim(0), 1, kMultiSourceSide, kMultiSourceSide};
  if (images.dtype() != DType::F32 || images.shape() != expected)
    fail(origin, ": multi: pairs 28x28 grey images, the split has ", images.describe());
  const int64_t rows = images.dim(0);
  if (rows < 2) fail(origin, ": multi: a split needs at least two images to pair, it has ", rows);
  const int64_t n = limit > 0 ? std::min(rows, limit) : rows;
  constexpr int64_t kSourcePlane = kMultiSourceSide * kMultiSourceSide;
  constexpr int64_t kCanvasPlane = kMultiCanvasSide * kMultiCanvasSide;

  Tensor canvas = Tensor::zeros({n, 1, kMultiCanvasSide, kMultiCanvasSide});
  Tensor left = Tensor::empty({n}, DType::I32), right = Tensor::empty({n}, DType::I32);
  const float* px = images.data<float>();
  const int32_t* cls = classes.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t partner = multi_partner(split, i, rows);
    float* out = canvas.data<float>() + i * kCanvasPlane;
    place_left(px + i * kSourcePlane, out);
    place_right(px + partner * kSourcePlane, out);
    left.data<int32_t>()[i] = cls[i];
    right.data<int32_t>()[i] = cls[partner];
  }
  return Dataset{{{"image", canvas}}, {{"class", left}, {"left", left}, {"right", right}}};
}

}  // namespace polytask::datasets
