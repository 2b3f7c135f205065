#include "watch/svg_painter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace polytask::watch {

namespace {

// Coordinates with two decimals: a hundredth of a pixel is below what anyone sees.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

int channel(double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 1.0) * 255)); }

// fill="..." or stroke="..." with the opacity beside it when not opaque.
std::string paint(const char* attribute, Color c) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s=\"#%02x%02x%02x\"", attribute, channel(c.r), channel(c.g),
                channel(c.b));
  std::string out = buf;
  if (c.a < 1) out += std::string(" ") + attribute + "-opacity=\"" + num(c.a) + "\"";
  return out;
}

std::string escape_xml(const std::string& text) {
  std::string out;
  for (const char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

}  // namespace

SvgPainter::SvgPainter(double width, double height) {
  body_ =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"" +
      num(width) + "\" height=\"" + num(height) + "\" viewBox=\"0 0 " + num(width) + " " +
      num(height) + "\" font-family=\"" + kFontFamily + ", Verdana, Arial, sans-serif\">\n";
}

void SvgPainter::fill_rect(double x, double y, double w, double h, Color color) {
  body_ += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(w) + "\" height=\"" +
           num(h) + "\" " + paint("fill", color) + "/>\n";
}

void SvgPainter::stroke_rect(double x, double y, double w, double h, Color color,
                             double line_width) {
  body_ += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(w) + "\" height=\"" +
           num(h) + "\" fill=\"none\" " + paint("stroke", color) + " stroke-width=\"" +
           num(line_width) + "\"/>\n";
}

void SvgPainter::polyline(const std::vector<Point>& points, Color color, double line_width,
                          bool dashed) {
  if (points.size() < 2) return;
  std::string list;
  for (const Point& p : points) {
    if (!list.empty()) list += ' ';
    list += num(p.x);
    list += ',';
    list += num(p.y);
  }
  body_ += "<polyline points=\"" + list + "\" fill=\"none\" " + paint("stroke", color) +
           " stroke-width=\"" + num(line_width) + "\" stroke-linejoin=\"round\"" +
           (dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
}

void SvgPainter::fill_circle(Point centre, double radius, Color color) {
  body_ += "<circle cx=\"" + num(centre.x) + "\" cy=\"" + num(centre.y) + "\" r=\"" + num(radius) +
           "\" " + paint("fill", color) + "/>\n";
}

void SvgPainter::text(double x, double y, const std::string& text, const Font& font, Color color,
                      Anchor anchor, bool vertical) {
  const char* anchors[] = {"start", "middle", "end"};
  body_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(font.size) + "\"" +
           (font.bold ? " font-weight=\"bold\"" : "") + " text-anchor=\"" +
           anchors[static_cast<int>(anchor)] + "\" " + paint("fill", color) +
           (vertical ? " transform=\"rotate(-90 " + num(x) + " " + num(y) + ")\"" : "") + ">" +
           escape_xml(text) + "</text>\n";
}

}  // namespace polytask::watch
