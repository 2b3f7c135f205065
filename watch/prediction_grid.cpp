#include "watch/prediction_grid.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>

#include "kernels/error.h"
#include "watch/cairo_painter.h"

namespace polytask::watch {

namespace {

const Font kLineFont{12, false}, kTitleFont{15, true};
constexpr double kPad = 8, kTextGap = 6, kLineHeight = 15, kFrame = 3, kTitleBand = 32;
const Color kRight{0.0, 0.45, 0.15}, kWrong{0.82, 0.1, 0.1}, kText{0.13, 0.13, 0.13},
    kWhite{1, 1, 1};

using Surface = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;
using Context = std::unique_ptr<cairo_t, decltype(&cairo_destroy)>;

void check(const GridCell& cell, size_t index) {
  if (cell.channels != 1 && cell.channels != 3)
    fail("prediction grid: cell ", index, " has ", cell.channels,
         " channels (1 for grey or 3 for RGB)");
  if (cell.height < 1 || cell.width < 1)
    fail("prediction grid: cell ", index, " is ", cell.height, "x", cell.width, " pixels");
  const size_t expected = static_cast<size_t>(cell.channels) * cell.height * cell.width;
  if (cell.pixels.size() != expected)
    fail("prediction grid: cell ", index, " has ", cell.pixels.size(), " pixel values, expected ",
         expected, " (", cell.channels, "x", cell.height, "x", cell.width, ")");
}

uint32_t byte_of(float v) {
  if (!(v > 0)) return 0;  // and NaN
  return static_cast<uint32_t>(std::lround(std::min(v, 1.0f) * 255));
}

// The cell's image as a cairo surface, one pixel per image pixel.
Surface image_surface(const GridCell& cell) {
  Surface s(cairo_image_surface_create(CAIRO_FORMAT_RGB24, cell.width, cell.height),
            cairo_surface_destroy);
  unsigned char* data = cairo_image_surface_get_data(s.get());
  if (!data) fail("prediction grid: cairo cannot make a ", cell.width, "x", cell.height, " image");
  const int stride = cairo_image_surface_get_stride(s.get());
  const size_t plane = static_cast<size_t>(cell.height) * cell.width;
  for (int y = 0; y < cell.height; ++y)
    for (int x = 0; x < cell.width; ++x) {
      const size_t at = static_cast<size_t>(y) * cell.width + x;
      const uint32_t r = byte_of(cell.pixels[at]);
      const uint32_t g = cell.channels == 3 ? byte_of(cell.pixels[plane + at]) : r;
      const uint32_t b = cell.channels == 3 ? byte_of(cell.pixels[2 * plane + at]) : r;
      const uint32_t pixel = (r << 16) | (g << 8) | b;  // RGB24: native-endian 0x00RRGGBB
      std::memcpy(data + y * stride + 4 * x, &pixel, 4);
    }
  cairo_surface_mark_dirty(s.get());
  return s;
}

}  // namespace

Png prediction_grid_png(const std::vector<GridCell>& cells, const GridOptions& options) {
  if (cells.empty()) fail("prediction grid: no cells");
  if (options.columns < 1 || options.scale < 1)
    fail("prediction grid: columns and scale must be at least 1, got ", options.columns, " and ",
         options.scale);
  // Every cell as large as the largest image and the widest line, so the grid lines up.
  double image_w = 0, image_h = 0, text_w = 0;
  size_t lines = 0;
  for (size_t i = 0; i < cells.size(); ++i) {
    check(cells[i], i);
    image_w = std::max(image_w, static_cast<double>(cells[i].width) * options.scale);
    image_h = std::max(image_h, static_cast<double>(cells[i].height) * options.scale);
    for (const GridLine& line : cells[i].lines)
      text_w = std::max(text_w, text_width(line.text, kLineFont));
    lines = std::max(lines, cells[i].lines.size());
  }
  const double cell_w = std::ceil(std::max(image_w + 2 * kFrame, text_w) + 2 * kPad);
  const double cell_h = std::ceil(kPad + kFrame + image_h + kFrame + kTextGap +
                                  kLineHeight * static_cast<double>(lines) + kPad);
  const size_t columns = std::min(cells.size(), static_cast<size_t>(options.columns));
  const size_t rows = (cells.size() + columns - 1) / columns;
  const double top = options.title.empty() ? 0 : kTitleBand;
  double width = cell_w * static_cast<double>(columns);
  if (!options.title.empty())
    width = std::max(width, std::ceil(text_width(options.title, kTitleFont) + 2 * kPad));
  const double height = top + cell_h * static_cast<double>(rows);
  if (width > 32767 || height > 32767)
    fail("prediction grid: ", cells.size(), " cells make a ", width, "x", height,
         " picture, more than cairo's 32767 pixels a side");

  Png png;
  png.width = static_cast<int>(width);
  png.height = static_cast<int>(height);
  Surface surface(cairo_image_surface_create(CAIRO_FORMAT_RGB24, png.width, png.height),
                  cairo_surface_destroy);
  Context cr(cairo_create(surface.get()), cairo_destroy);
  CairoPainter painter(cr.get());
  Painter& p = painter;  // through the interface, where text() has its default
  p.fill_rect(0, 0, width, height, kWhite);
  if (!options.title.empty())
    p.text(width / 2, 22, options.title, kTitleFont, kText, Anchor::kMiddle);
  // The grid centred when the title is wider than it.
  const double left = std::floor((width - cell_w * static_cast<double>(columns)) / 2);
  for (size_t i = 0; i < cells.size(); ++i) {
    const GridCell& cell = cells[i];
    const double x0 = left + cell_w * static_cast<double>(i % columns);
    const double y0 = top + cell_h * static_cast<double>(i / columns);
    const double w = static_cast<double>(cell.width) * options.scale;
    const double h = static_cast<double>(cell.height) * options.scale;
    // Centred in the image box, so smaller images line up with larger ones.
    const double ix = std::round(x0 + (cell_w - w) / 2);
    const double iy = std::round(y0 + kPad + kFrame + (image_h - h) / 2);

    const Surface image = image_surface(cell);
    cairo_save(cr.get());
    cairo_translate(cr.get(), ix, iy);
    cairo_scale(cr.get(), options.scale, options.scale);
    cairo_set_source_surface(cr.get(), image.get(), 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr.get()), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr.get(), 0, 0, cell.width, cell.height);
    cairo_fill(cr.get());
    cairo_restore(cr.get());

    const bool any_wrong = std::any_of(cell.lines.begin(), cell.lines.end(),
                                       [](const GridLine& l) { return l.wrong; });
    if (any_wrong)
      p.stroke_rect(ix - kFrame / 2, iy - kFrame / 2, w + kFrame, h + kFrame, kWrong, kFrame);
    const double text_top = y0 + kPad + kFrame + image_h + kFrame + kTextGap;
    for (size_t l = 0; l < cell.lines.size(); ++l)
      p.text(x0 + cell_w / 2, text_top + kLineHeight * static_cast<double>(l) + 11,
             cell.lines[l].text, kLineFont,
             cell.lines[l].wrong    ? kWrong
             : cell.lines[l].judged ? kRight
                                    : kText,
             Anchor::kMiddle);
  }
  if (const cairo_status_t s = cairo_status(cr.get()); s != CAIRO_STATUS_SUCCESS)
    fail("prediction grid: cairo: ", cairo_status_to_string(s));
  png.bytes = png_bytes(surface.get(), "the prediction grid");
  return png;
}

}  // namespace polytask::watch
