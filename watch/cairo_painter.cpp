#include "watch/cairo_painter.h"

#include <cmath>
#include <memory>
#include <numbers>

#include "kernels/error.h"

namespace polytask::watch {

namespace {

void set_color(cairo_t* cr, Color c) { cairo_set_source_rgba(cr, c.r, c.g, c.b, c.a); }

// Appends what cairo hands over while encoding a PNG.
cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

void set_font(cairo_t* cr, const Font& font) {
  cairo_select_font_face(cr, kFontFamily, CAIRO_FONT_SLANT_NORMAL,
                         font.bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, font.size);
}

double text_width(const std::string& text, const Font& font) {
  // A scratch context: font metrics do not depend on the surface they are drawn on.
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface(
      cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1), cairo_surface_destroy);
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr(cairo_create(surface.get()), cairo_destroy);
  set_font(cr.get(), font);
  cairo_text_extents_t extents;
  cairo_text_extents(cr.get(), text.c_str(), &extents);
  return extents.x_advance;
}

void CairoPainter::fill_rect(double x, double y, double w, double h, Color color) {
  set_color(cr_, color);
  cairo_rectangle(cr_, x, y, w, h);
  cairo_fill(cr_);
}

void CairoPainter::stroke_rect(double x, double y, double w, double h, Color color,
                               double line_width) {
  set_color(cr_, color);
  cairo_set_line_width(cr_, line_width);
  cairo_set_dash(cr_, nullptr, 0, 0);
  cairo_rectangle(cr_, x, y, w, h);
  cairo_stroke(cr_);
}

void CairoPainter::polyline(const std::vector<Point>& points, Color color, double line_width,
                            bool dashed) {
  if (points.size() < 2) return;
  set_color(cr_, color);
  cairo_set_line_width(cr_, line_width);
  cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr_, CAIRO_LINE_CAP_BUTT);
  const double dashes[] = {6, 4};
  cairo_set_dash(cr_, dashed ? dashes : nullptr, dashed ? 2 : 0, 0);
  cairo_move_to(cr_, points[0].x, points[0].y);
  for (size_t i = 1; i < points.size(); ++i) cairo_line_to(cr_, points[i].x, points[i].y);
  cairo_stroke(cr_);
  cairo_set_dash(cr_, nullptr, 0, 0);
}

void CairoPainter::fill_circle(Point centre, double radius, Color color) {
  set_color(cr_, color);
  cairo_new_sub_path(cr_);
  cairo_arc(cr_, centre.x, centre.y, radius, 0, 2 * std::numbers::pi);
  cairo_fill(cr_);
}

void CairoPainter::text(double x, double y, const std::string& text, const Font& font, Color color,
                        Anchor anchor, bool vertical) {
  cairo_save(cr_);
  set_font(cr_, font);
  set_color(cr_, color);
  cairo_text_extents_t extents;
  cairo_text_extents(cr_, text.c_str(), &extents);
  const double shift = anchor == Anchor::kStart    ? 0
                       : anchor == Anchor::kMiddle ? extents.x_advance / 2
                                                   : extents.x_advance;
  cairo_translate(cr_, x, y);
  if (vertical) cairo_rotate(cr_, -std::numbers::pi / 2);
  cairo_move_to(cr_, -shift, 0);
  cairo_show_text(cr_, text.c_str());
  cairo_restore(cr_);
}

std::string png_bytes(cairo_surface_t* surface, const std::string& what) {
  cairo_surface_flush(surface);
  if (const cairo_status_t s = cairo_surface_status(surface); s != CAIRO_STATUS_SUCCESS)
    fail("cannot draw ", what, ": cairo: ", cairo_status_to_string(s));
  std::string bytes;
  if (const cairo_status_t s = cairo_surface_write_to_png_stream(surface, append_bytes, &bytes);
      s != CAIRO_STATUS_SUCCESS)
    fail("cannot encode the PNG of ", what, ": cairo: ", cairo_status_to_string(s));
  return bytes;
}

}  // namespace polytask::watch
