// The few drawing operations the pictures need, behind one interface with two back ends: cairo
// (PNG, cairo_painter.h) and our own SVG writer (svg_painter.h). The second exists because
// cairo's SVG surface draws text as glyph outlines: its SVGs have no searchable, selectable
// text. Both back ends measure text with cairo, so the layout is the same in both files.
#pragma once

#include <string>
#include <vector>

namespace polytask::watch {

struct Color {
  double r = 0, g = 0, b = 0, a = 1;
};

struct Point {
  double x = 0, y = 0;
};

struct Font {
  double size = 12;
  bool bold = false;
};

// Where the text's x is: its left end, its middle or its right end.
enum class Anchor { kStart, kMiddle, kEnd };

// The sans font of every picture (fonts-dejavu-core on Debian; SVG viewers fall back to
// another sans font).
inline constexpr const char* kFontFamily = "DejaVu Sans";

class Painter {
 public:
  virtual ~Painter() = default;
  virtual void fill_rect(double x, double y, double w, double h, Color color) = 0;
  // A frame of `line_width` centred on the rectangle's edges.
  virtual void stroke_rect(double x, double y, double w, double h, Color color,
                           double line_width) = 0;
  virtual void polyline(const std::vector<Point>& points, Color color, double line_width,
                        bool dashed) = 0;
  virtual void fill_circle(Point centre, double radius, Color color) = 0;
  // Text with its baseline at y. `vertical` turns it to read upwards, anchored along the turn.
  virtual void text(double x, double y, const std::string& text, const Font& font, Color color,
                    Anchor anchor, bool vertical = false) = 0;
};

// The advance width of `text` in pixels (cairo's toy font API), for layout in either back end.
double text_width(const std::string& text, const Font& font);

}  // namespace polytask::watch
