#include <cairo.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>

#include "datasets/idx.h"
#include "kernels/error.h"
#include "tests/watch/picture_check.h"
#include "watch/prediction_grid.h"
#include "watch/write_file.h"

namespace polytask::watch {
namespace {

using testing::count_near;
using testing::out_dir;
using testing::pixel;
using testing::Rgb;

using Surface = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;

struct Reader {
  const std::string* bytes;
  size_t at = 0;
};

cairo_status_t read_bytes(void* closure, unsigned char* data, unsigned int length) {
  auto* r = static_cast<Reader*>(closure);
  if (r->at + length > r->bytes->size()) return CAIRO_STATUS_READ_ERROR;
  std::memcpy(data, r->bytes->data() + r->at, length);
  r->at += length;
  return CAIRO_STATUS_SUCCESS;
}

Surface decode(const Png& png) {
  Reader reader{&png.bytes};
  Surface s(cairo_image_surface_create_from_png_stream(read_bytes, &reader), cairo_surface_destroy);
  EXPECT_EQ(cairo_surface_status(s.get()), CAIRO_STATUS_SUCCESS);
  return s;
}

// A grey image: a bright square on dark, varying by `seed`.
GridCell grey_cell(int seed, bool wrong) {
  GridCell cell;
  cell.height = cell.width = 28;
  cell.pixels.assign(28 * 28, 0.1f);
  for (int y = 6; y < 22; ++y)
    for (int x = 6 + seed % 4; x < 20 + seed % 4; ++x) cell.pixels[y * 28 + x] = 0.9f;
  cell.lines = {{"type: Bag / " + std::string(wrong ? "Sneaker" : "Bag"), wrong},
                {"parity: even / even", false}};
  return cell;
}

// A 3-channel image: red left half, blue right half, values outside [0, 1] to clamp.
GridCell colour_cell() {
  GridCell cell;
  cell.channels = 3;
  cell.height = 8;
  cell.width = 8;
  cell.pixels.assign(3 * 64, 0.0f);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      const int at = y * 8 + x;
      if (x < 4) {
        cell.pixels[at] = 1.7f;  // red, clamped to 1
        cell.pixels[128 + at] = -0.5f;
      } else {
        cell.pixels[128 + at] = 1.0f;  // blue
      }
    }
  cell.lines = {{"colour: red / red", false}};
  return cell;
}

TEST(PredictionGrid, DecodesToTheReturnedSize) {
  std::vector<GridCell> cells;
  for (int i = 0; i < 10; ++i) cells.push_back(grey_cell(i, false));
  const Png png = prediction_grid_png(cells, {.columns = 4, .scale = 2, .title = "samples"});
  ASSERT_GT(png.bytes.size(), 8u);
  EXPECT_EQ(png.bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  const Surface image = decode(png);
  EXPECT_EQ(cairo_image_surface_get_width(image.get()), png.width);
  EXPECT_EQ(cairo_image_surface_get_height(image.get()), png.height);
  // 4 columns at least as wide as the scaled images; 3 rows.
  EXPECT_GE(png.width, 4 * 56);
  EXPECT_GE(png.height, 3 * 56);
  // The bright squares (230 grey) are there.
  EXPECT_GT(count_near(image.get(), {230, 230, 230}, 2), 10 * 28 * 28);
}

TEST(PredictionGrid, CellsAreAsWideAsTheirWidestLine) {
  GridCell cell = grey_cell(0, false);
  cell.lines[0].text = "a line much wider than the tiny image under which it is written";
  const Png one = prediction_grid_png({cell}, {.columns = 8, .scale = 1});
  const Png two = prediction_grid_png({cell, cell}, {.columns = 8, .scale = 1});
  EXPECT_GT(one.width, 300);
  EXPECT_EQ(two.width, 2 * one.width);
}

TEST(PredictionGrid, WrongCellHasARedFrameRightCellNone) {
  const Rgb red{209, 26, 26};
  const Png wrong = prediction_grid_png({grey_cell(0, true)}, {.columns = 1, .scale = 3});
  const Png right = prediction_grid_png({grey_cell(0, false)}, {.columns = 1, .scale = 3});
  const Surface w = decode(wrong), r = decode(right);
  // The frame: 4 sides of 84 + 2 * 3 pixels, 3 wide; the red text adds a little.
  EXPECT_GT(count_near(w.get(), red, 10), 4 * 84 * 3);
  EXPECT_LT(count_near(r.get(), red, 10), 10);
}

TEST(PredictionGrid, ColourImagesKeepTheirColour) {
  const Png png = prediction_grid_png({colour_cell()}, {.columns = 1, .scale = 4});
  const Surface image = decode(png);
  // 8x8 at scale 4: 16x32 pixels of pure red and as many of pure blue.
  EXPECT_GE(count_near(image.get(), {255, 0, 0}, 0), 16 * 32);
  EXPECT_GE(count_near(image.get(), {0, 0, 255}, 0), 16 * 32);
}

TEST(PredictionGrid, MalformedCellsAreNamed) {
  GridCell bad = grey_cell(0, false);
  bad.pixels.pop_back();
  try {
    prediction_grid_png({grey_cell(0, false), bad}, {});
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cell 1"), std::string::npos) << e.what();
  }
  GridCell two_channels = grey_cell(0, false);
  two_channels.channels = 2;
  EXPECT_THROW(prediction_grid_png({two_channels}, {}), Error);
  EXPECT_THROW(prediction_grid_png({}, {}), Error);
  EXPECT_THROW(prediction_grid_png({grey_cell(0, false)}, {.columns = 0}), Error);
}

TEST(PredictionGrid, WritingToAMissingDirectoryNamesThePath) {
  const Png png = prediction_grid_png({grey_cell(0, false)}, {});
  const std::string path = "/nonexistent-polytask-dir/grid.png";
  try {
    write_file_atomically(path, png.bytes);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

// Pictures to look at (POLYTASK_WATCH_SAMPLES=dir): real Fashion-MNIST images when the data set
// is installed, and a colour grid.
TEST(PredictionGrid, Samples) {
  if (!std::getenv("POLYTASK_WATCH_SAMPLES")) GTEST_SKIP() << "POLYTASK_WATCH_SAMPLES not set";
  const std::string dir = out_dir();
  const std::string images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  const std::string labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  if (std::filesystem::exists(images)) {
    const char* names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    const std::vector<float> x = datasets::read_idx_images(images, 16).to_vector<float>();
    const std::vector<int32_t> y = datasets::read_idx_labels(labels, 16).to_vector<int32_t>();
    std::vector<GridCell> cells;
    for (int i = 0; i < 16; ++i) {
      GridCell cell;
      cell.height = cell.width = 28;
      cell.pixels.assign(x.begin() + i * 784, x.begin() + (i + 1) * 784);
      const int predicted = i % 5 == 3 ? (y[i] + 4) % 10 : y[i];
      const bool footwear = y[i] == 5 || y[i] == 7 || y[i] == 9;
      cell.lines = {
          {std::string("type: ") + names[y[i]] + " / " + names[predicted], predicted != y[i]},
          {std::string("shoe: ") + (footwear ? "yes" : "no") + " / " +
               (footwear != (i == 6) ? "yes" : "no"),
           i == 6}};
      cells.push_back(cell);
    }
    write_file_atomically(
        dir + "/grid_fashion.png",
        prediction_grid_png(cells,
                            {.columns = 8, .scale = 3, .title = "Fashion-MNIST test, epoch 5"})
            .bytes);
  }
  std::vector<GridCell> colour;
  for (int i = 0; i < 6; ++i) {
    GridCell cell;
    cell.channels = 3;
    cell.height = cell.width = 32;
    cell.pixels.resize(3 * 32 * 32);
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const int at = y * 32 + x;
        cell.pixels[at] = static_cast<float>(x) / 31 * (i % 3 == 0);
        cell.pixels[1024 + at] = static_cast<float>(y) / 31 * (i % 3 == 1);
        cell.pixels[2048 + at] = static_cast<float>((x + y) % 8 < 4) * (i % 3 == 2 ? 1.f : 0.3f);
      }
    cell.lines = {{i == 4 ? "class: frog / truck" : "class: cat / cat", i == 4}};
    colour.push_back(cell);
  }
  colour.push_back(colour_cell());
  write_file_atomically(
      dir + "/grid_colour.png",
      prediction_grid_png(colour, {.columns = 4, .scale = 3, .title = "colour images (CIFAR-like)"})
          .bytes);
}

}  // namespace
}  // namespace polytask::watch
