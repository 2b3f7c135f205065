// The SVG back end of Painter: writes the SVG elements itself, so text stays <text> (searchable,
// selectable, sharp at any zoom), which cairo's SVG surface does not do.
#pragma once

#include <string>
#include <vector>

#include "watch/painter.h"

namespace polytask::watch {

class SvgPainter final : public Painter {
 public:
  // A picture of width x height user units (pixels at 100%).
  SvgPainter(double width, double height);
  void fill_rect(double x, double y, double w, double h, Color color) override;
  void stroke_rect(double x, double y, double w, double h, Color color, double line_width) override;
  void polyline(const std::vector<Point>& points, Color color, double line_width,
                bool dashed) override;
  void fill_circle(Point centre, double radius, Color color) override;
  void text(double x, double y, const std::string& text, const Font& font, Color color,
            Anchor anchor, bool vertical) override;

  // The whole document.
  std::string str() const { return body_ + "</svg>\n"; }

 private:
  std::string body_;
};

}  // namespace polytask::watch
