// A grid of sample images with what each head predicted under them, wrong predictions in red:
// the picture that shows what a model gets wrong (and TensorBoard's image tab embeds).
#pragma once

#include <string>
#include <vector>

namespace polytask::watch {

struct GridLine {
  std::string text;    // e.g. "type: Bag / Sneaker" (true / predicted)
  bool wrong = false;  // drawn in red (right ones in dark green)
  bool judged = true;  // false: a value with no right or wrong (regression), in plain dark grey
};

struct GridCell {
  int channels = 1, height = 0, width = 0;  // 1: grey, 3: RGB
  std::vector<float> pixels;                // CHW, values in [0, 1] (others are clamped)
  std::vector<GridLine> lines;              // one per head, drawn under the image
};

struct GridOptions {
  int columns = 8;    // cells per row (fewer when there are fewer cells)
  int scale = 3;      // each image pixel becomes scale x scale pixels (nearest neighbour)
  std::string title;  // above the grid; none when empty
};

// A PNG file in memory.
struct Png {
  std::string bytes;
  int width = 0, height = 0;
};

// The cells in a grid, row by row: each image scaled up with crisp pixels (colour images in
// colour), its lines centred under it, a red frame around an image with any wrong line. All
// cells are as wide as the widest image or line, so the columns line up and no text is cut.
// Throws polytask::Error naming the cell for a malformed one (channels other than 1 or 3, pixel
// count not channels x height x width), and for no cells, columns or scale below 1, or a
// picture too large for cairo (32767 pixels a side).
Png prediction_grid_png(const std::vector<GridCell>& cells, const GridOptions& options);

}  // namespace polytask::watch
