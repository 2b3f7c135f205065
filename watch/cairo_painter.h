// The cairo back end of Painter, and cairo helpers shared by the pictures. Internal to
// polytask_watch: cairo is a private dependency, so no public header includes cairo.h.
#pragma once

#include <cairo.h>

#include <string>
#include <vector>

#include "watch/painter.h"

namespace polytask::watch {

class CairoPainter final : public Painter {
 public:
  explicit CairoPainter(cairo_t* cr) : cr_(cr) {}
  void fill_rect(double x, double y, double w, double h, Color color) override;
  void stroke_rect(double x, double y, double w, double h, Color color, double line_width) override;
  void polyline(const std::vector<Point>& points, Color color, double line_width,
                bool dashed) override;
  void fill_circle(Point centre, double radius, Color color) override;
  void text(double x, double y, const std::string& text, const Font& font, Color color,
            Anchor anchor, bool vertical) override;

 private:
  cairo_t* cr_;
};

// Selects the pictures' font on `cr`.
void set_font(cairo_t* cr, const Font& font);

// The PNG file of an image surface, in memory. Throws naming `what` (the destination) when
// cairo reports an error, on the surface or while encoding.
std::string png_bytes(cairo_surface_t* surface, const std::string& what);

}  // namespace polytask::watch
