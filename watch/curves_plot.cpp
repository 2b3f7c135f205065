#include "watch/curves_plot.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "kernels/error.h"
#include "watch/cairo_painter.h"
#include "watch/svg_painter.h"
#include "watch/ticks.h"
#include "watch/write_file.h"

namespace polytask::watch {

namespace {

// Sizes in pixels at 1x.
constexpr double kPanelWidth = 520, kPanelHeight = 300;
constexpr double kTitleBand = 40, kLegendRow = 22;
constexpr double kPngScale = 2;
// Series longer than this get no markers: dots every few pixels only blur the line.
constexpr size_t kMarkersUpTo = 40;

const Font kTitleFont{18, true}, kPanelTitleFont{14, true}, kTickFont{11, false},
    kLegendFont{12, false};
const Color kText{0.13, 0.13, 0.13}, kMuted{0.4, 0.4, 0.4}, kGrid{0.88, 0.88, 0.88},
    kFrame{0.55, 0.55, 0.55}, kWhite{1, 1, 1};

// matplotlib's tab10: distinct, and familiar from every other training plot.
const Color kPalette[] = {{0.122, 0.467, 0.706}, {1.0, 0.498, 0.055},   {0.173, 0.627, 0.173},
                          {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                          {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
                          {0.090, 0.745, 0.812}};

Color run_color(size_t run) { return kPalette[run % std::size(kPalette)]; }

// One line of a panel: a run's values per epoch (NaN where the line breaks).
struct Series {
  size_t run = 0;
  bool validation = false;
  std::vector<Point> points;  // x: epoch, y: value (NaN allowed)
};

struct Panel {
  std::string title;
  std::vector<Series> series;
};

using Row = std::vector<Panel>;

// The values of `key` per epoch of `run`; none when the run never has the key.
std::vector<Point> values_of(const RunHistory& run, const std::string& key, bool weight) {
  std::vector<Point> points;
  bool any = false;
  for (const EpochRecord& e : run.epochs) {
    const auto& map = weight ? e.weights : e.values;
    const auto it = map.find(key);
    const double v = it == map.end() ? std::nan("") : it->second;
    any = any || it != map.end();
    points.push_back({static_cast<double>(e.epoch), v});
  }
  return any ? points : std::vector<Point>{};
}

void add_series(Panel& panel, size_t run, bool validation, std::vector<Point> points) {
  if (!points.empty()) panel.series.push_back({run, validation, std::move(points)});
}

bool weights_move(const std::vector<RunHistory>& runs) {
  for (const RunHistory& run : runs)
    for (const std::string& task : run.tasks) {
      double first = std::nan("");
      for (const EpochRecord& e : run.epochs) {
        const auto it = e.weights.find(task);
        if (it == e.weights.end() || !std::isfinite(it->second)) continue;
        if (std::isnan(first)) first = it->second;
        if (std::abs(it->second - first) > 1e-9 * std::max(1.0, std::abs(first))) return true;
      }
    }
  return false;
}

// The figure's rows: heads in order of first appearance across the runs, then the weights.
std::vector<Row> build_rows(const std::vector<RunHistory>& runs) {
  std::vector<std::string> heads;
  for (const RunHistory& run : runs)
    for (const std::string& task : run.tasks)
      if (std::find(heads.begin(), heads.end(), task) == heads.end()) heads.push_back(task);
  std::vector<Row> rows;
  for (const std::string& head : heads) {
    std::vector<std::string> kinds = {"loss"};
    for (const RunHistory& run : runs) {
      if (std::find(run.tasks.begin(), run.tasks.end(), head) == run.tasks.end()) continue;
      for (const std::string& m : run.metrics_of(head))
        if (std::find(kinds.begin(), kinds.end(), m) == kinds.end()) kinds.push_back(m);
    }
    Row row;
    for (const std::string& kind : kinds) {
      Panel panel{head + " \u2014 " + kind, {}};
      for (size_t r = 0; r < runs.size(); ++r) {
        if (std::find(runs[r].tasks.begin(), runs[r].tasks.end(), head) == runs[r].tasks.end())
          continue;
        add_series(panel, r, false, values_of(runs[r], head + "_" + kind, false));
        add_series(panel, r, true, values_of(runs[r], "val_" + head + "_" + kind, false));
      }
      row.push_back(std::move(panel));
    }
    rows.push_back(std::move(row));
  }
  if (weights_move(runs)) {
    Row row;
    for (const std::string& head : heads) {
      Panel panel{head + " \u2014 balancer weight", {}};
      for (size_t r = 0; r < runs.size(); ++r)
        add_series(panel, r, false, values_of(runs[r], head, true));
      if (!panel.series.empty()) row.push_back(std::move(panel));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// A legend entry: a short line in the run's colour (or grey for train/validation) and its text.
struct LegendItem {
  std::string text;
  Color color;
  bool dashed = false;
  bool marker = true;
};

constexpr double kSwatch = 26, kSwatchGap = 6, kItemGap = 22;

double item_width(const LegendItem& item) {
  return kSwatch + kSwatchGap + text_width(item.text, kLegendFont);
}

// Items laid out in lines no wider than `width`, each line centred.
std::vector<std::vector<LegendItem>> wrap_legend(const std::vector<LegendItem>& items,
                                                 double width) {
  std::vector<std::vector<LegendItem>> lines(1);
  double used = 0;
  for (const LegendItem& item : items) {
    const double w = item_width(item);
    if (!lines.back().empty() && used + kItemGap + w > width) {
      lines.emplace_back();
      used = 0;
    }
    used += (lines.back().empty() ? 0 : kItemGap) + w;
    lines.back().push_back(item);
  }
  return lines;
}

void draw_legend(Painter& p, const std::vector<std::vector<LegendItem>>& lines, double width,
                 double top) {
  for (size_t l = 0; l < lines.size(); ++l) {
    double total = 0;
    for (const LegendItem& item : lines[l]) total += item_width(item) + kItemGap;
    double x = (width - (total - kItemGap)) / 2;
    const double y = top + kLegendRow * (static_cast<double>(l) + 0.5);
    for (const LegendItem& item : lines[l]) {
      p.polyline({{x, y}, {x + kSwatch, y}}, item.color, 2, item.dashed);
      if (item.marker) p.fill_circle({x + kSwatch / 2, y}, 3.2, item.color);
      p.text(x + kSwatch + kSwatchGap, y + 4, item.text, kLegendFont, kText, Anchor::kStart);
      x += item_width(item) + kItemGap;
    }
  }
}

void draw_panel(Painter& p, const Panel& panel, double x0, double y0) {
  p.text(x0 + kPanelWidth / 2, y0 + 24, panel.title, kPanelTitleFont, kText, Anchor::kMiddle);

  int first = 0, last = 0;
  double lo = INFINITY, hi = -INFINITY;
  bool any_epoch = false;
  for (const Series& s : panel.series)
    for (const Point& q : s.points) {
      const int e = static_cast<int>(q.x);
      first = any_epoch ? std::min(first, e) : e;
      last = any_epoch ? std::max(last, e) : e;
      any_epoch = true;
      if (std::isfinite(q.y)) {
        lo = std::min(lo, q.y);
        hi = std::max(hi, q.y);
      }
    }
  const bool any_value = lo <= hi;
  const Axis xs = epoch_axis(any_epoch ? first : 1, any_epoch ? last : 1);
  const Axis ys = any_value ? value_axis(lo, hi) : value_axis(0, 1);

  // The plot area: room on the left for the widest tick number.
  double label_width = 0;
  for (double t : ys.ticks)
    label_width = std::max(label_width, text_width(tick_label(t, ys), kTickFont));
  const double left = x0 + 16 + label_width + 8, right = x0 + kPanelWidth - 24;
  const double top = y0 + 40, bottom = y0 + kPanelHeight - 46;
  const auto px = [&](double v) { return left + (v - xs.lo) / (xs.hi - xs.lo) * (right - left); };
  const auto py = [&](double v) { return bottom - (v - ys.lo) / (ys.hi - ys.lo) * (bottom - top); };

  p.fill_rect(left, top, right - left, bottom - top, kWhite);
  for (double t : ys.ticks) {
    p.polyline({{left, py(t)}, {right, py(t)}}, kGrid, 1, false);
    p.polyline({{left - 4, py(t)}, {left, py(t)}}, kFrame, 1, false);
    p.text(left - 7, py(t) + 4, tick_label(t, ys), kTickFont, kMuted, Anchor::kEnd);
  }
  for (double t : xs.ticks) {
    p.polyline({{px(t), top}, {px(t), bottom}}, kGrid, 1, false);
    p.polyline({{px(t), bottom}, {px(t), bottom + 4}}, kFrame, 1, false);
    p.text(px(t), bottom + 17, tick_label(t, xs), kTickFont, kMuted, Anchor::kMiddle);
  }
  p.stroke_rect(left, top, right - left, bottom - top, kFrame, 1);
  p.text((left + right) / 2, bottom + 35, "epoch", kTickFont, kMuted, Anchor::kMiddle);
  if (!any_value) {
    p.text((left + right) / 2, (top + bottom) / 2, "no values", kLegendFont, kMuted,
           Anchor::kMiddle);
    return;
  }

  // Validation first, so the training line of the same run is on top where they overlap.
  for (const bool validation : {true, false})
    for (const Series& s : panel.series) {
      if (s.validation != validation) continue;
      const Color color = run_color(s.run);
      std::vector<Point> stretch;
      const auto flush = [&] {
        p.polyline(stretch, color, 2, validation);
        stretch.clear();
      };
      for (const Point& q : s.points) {
        if (!std::isfinite(q.y)) {
          flush();
          continue;
        }
        stretch.push_back({px(q.x), py(q.y)});
      }
      flush();
      // Markers, so a single epoch (a line of one point) still shows; on long runs only where
      // a point has no line through it. Validation's are hollow, to tell the two apart there.
      const size_t n = s.points.size();
      const auto finite = [&](size_t i) { return i < n && std::isfinite(s.points[i].y); };
      for (size_t i = 0; i < n; ++i) {
        if (!finite(i)) continue;
        const bool isolated = !(i > 0 && finite(i - 1)) && !finite(i + 1);
        if (n > kMarkersUpTo && !isolated) continue;
        const Point at{px(s.points[i].x), py(s.points[i].y)};
        p.fill_circle(at, 3.2, color);
        if (validation) p.fill_circle(at, 1.6, kWhite);
      }
    }
}

struct Figure {
  std::string title;
  std::vector<Row> rows;
  std::vector<std::vector<LegendItem>> legend;
  double width = 0, height = 0, header = 0;
};

Figure layout(const std::vector<RunHistory>& runs, const std::string& title) {
  Figure f;
  f.title = title;
  f.rows = build_rows(runs);
  size_t columns = 1;
  for (const Row& row : f.rows) columns = std::max(columns, row.size());
  f.width = kPanelWidth * static_cast<double>(columns);
  std::vector<LegendItem> items;
  for (size_t r = 0; r < runs.size(); ++r) items.push_back({runs[r].label, run_color(r)});
  bool any_validation = false;
  for (const Row& row : f.rows)
    for (const Panel& panel : row)
      for (const Series& s : panel.series) any_validation = any_validation || s.validation;
  if (any_validation) {
    items.push_back({"train", kMuted, false, false});
    items.push_back({"validation", kMuted, true, false});
  }
  f.legend = wrap_legend(items, f.width - 40);
  f.header = kTitleBand + kLegendRow * static_cast<double>(f.legend.size()) + 6;
  f.height = f.header + kPanelHeight * static_cast<double>(f.rows.size());
  return f;
}

void draw(Painter& p, const Figure& f) {
  p.fill_rect(0, 0, f.width, f.height, kWhite);
  p.text(f.width / 2, 28, f.title, kTitleFont, kText, Anchor::kMiddle);
  draw_legend(p, f.legend, f.width, kTitleBand);
  for (size_t r = 0; r < f.rows.size(); ++r)
    for (size_t c = 0; c < f.rows[r].size(); ++c)
      draw_panel(p, f.rows[r][c], kPanelWidth * static_cast<double>(c),
                 f.header + kPanelHeight * static_cast<double>(r));
}

std::string render_png(const Figure& f, const std::string& path) {
  const int w = static_cast<int>(std::ceil(f.width * kPngScale));
  const int h = static_cast<int>(std::ceil(f.height * kPngScale));
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface(
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h), cairo_surface_destroy);
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr(cairo_create(surface.get()), cairo_destroy);
  cairo_scale(cr.get(), kPngScale, kPngScale);
  CairoPainter painter(cr.get());
  draw(painter, f);
  if (const cairo_status_t s = cairo_status(cr.get()); s != CAIRO_STATUS_SUCCESS)
    fail("cannot draw ", path, ": cairo: ", cairo_status_to_string(s));
  return png_bytes(surface.get(), path);
}

}  // namespace

void plot_curves(const std::vector<RunHistory>& runs, const std::string& title,
                 const std::string& png_path, const std::string& svg_path) {
  if (runs.empty()) fail("plot_curves: no runs to draw into ", png_path);
  const Figure figure = layout(runs, title);
  const std::string png = render_png(figure, png_path);
  SvgPainter svg(figure.width, figure.height);
  draw(svg, figure);
  write_file_atomically(png_path, png);
  write_file_atomically(svg_path, svg.str());
}

}  // namespace polytask::watch
