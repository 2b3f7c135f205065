#include <cairo.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>

#include "kernels/error.h"
#include "tests/watch/picture_check.h"
#include "watch/curves_plot.h"

namespace polytask::watch {
namespace {

using testing::count_near;
using testing::out_dir;
using testing::Rgb;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const Rgb kBlue{31, 119, 180}, kOrange{255, 127, 14};  // the first two run colours

// A two-head run (classification and regression) of `epochs` epochs; `moving` weights change.
RunHistory two_head_run(const std::string& label, int epochs, bool moving, double offset = 0) {
  RunHistory run;
  run.label = label;
  run.tasks = {"digit", "brightness"};
  for (int e = 1; e <= epochs; ++e) {
    const double t = e;
    EpochRecord r;
    r.epoch = e;
    r.values = {{"loss", 1.2 / t + offset},
                {"digit_loss", 0.9 / t + offset},
                {"digit_accuracy", 1 - 0.3 / t - offset},
                {"val_digit_loss", 1.0 / t + 0.05 + offset},
                {"val_digit_accuracy", 1 - 0.35 / t - offset},
                {"brightness_loss", 0.04 / t},
                {"brightness_mae", 0.15 / std::sqrt(t)},
                {"val_brightness_mae", 0.17 / std::sqrt(t)}};
    r.weights = {{"digit", moving ? 1.0 + 0.05 * t : 1.0},
                 {"brightness", moving ? 1.0 - 0.04 * t : 0.5}};
    run.epochs.push_back(r);
  }
  return run;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

using Surface = std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)>;

Surface decode(const std::string& png_path) {
  Surface s(cairo_image_surface_create_from_png(png_path.c_str()), cairo_surface_destroy);
  EXPECT_EQ(cairo_surface_status(s.get()), CAIRO_STATUS_SUCCESS) << png_path;
  return s;
}

// The SVG's width attribute.
double svg_width(const std::string& svg) {
  const auto at = svg.find("width=\"");
  return at == std::string::npos ? 0 : std::stod(svg.substr(at + 7));
}

TEST(CurvesPlot, OneRunWithTwoHeadsAndMovingWeights) {
  const std::string dir = out_dir();
  const std::string png = dir + "/curves_one_run.png", svg = dir + "/curves_one_run.svg";
  plot_curves({two_head_run("mnist (gradnorm)", 12, true)}, "mnist — digit + brightness", png, svg);

  const std::string bytes = read_all(png);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  const Surface image = decode(png);
  const std::string text = read_all(svg);
  // Two panels per head row (loss + one metric); drawn at twice the SVG's size.
  EXPECT_EQ(svg_width(text), 2 * 520.0);
  EXPECT_EQ(cairo_image_surface_get_width(image.get()), 2 * 1040);
  EXPECT_GT(cairo_image_surface_get_height(image.get()), 2 * 3 * 300);
  EXPECT_GT(count_near(image.get(), kBlue), 500) << "the run's lines are missing";

  EXPECT_NE(text.find("<svg"), std::string::npos);
  for (const char* title :
       {"digit — loss", "digit — accuracy", "brightness — loss", "brightness — mae",
        "balancer weight", "mnist (gradnorm)", "epoch", "validation"})
    EXPECT_NE(text.find(title), std::string::npos) << title;
  EXPECT_NE(text.find("<text"), std::string::npos) << "text must be text, not glyph outlines";
}

TEST(CurvesPlot, WeightsRowOnlyWhenWeightsMove) {
  const std::string dir = out_dir();
  plot_curves({two_head_run("static", 5, false)}, "static weights", dir + "/static.png",
              dir + "/static.svg");
  const std::string text = read_all(dir + "/static.svg");
  EXPECT_NE(text.find("digit — loss"), std::string::npos);
  EXPECT_EQ(text.find("balancer weight"), std::string::npos);
  // Two rows (the heads), no third.
  const Surface image = decode(dir + "/static.png");
  EXPECT_LT(cairo_image_surface_get_height(image.get()), 2 * 3 * 300);
}

TEST(CurvesPlot, OverlayOfTwoRunsMatchesHeadsByName) {
  RunHistory other = two_head_run("run b <uncertainty>", 8, true, 0.05);
  // The second run has no brightness head, and a third head of its own.
  other.tasks = {"digit", "parity"};
  for (EpochRecord& e : other.epochs) {
    e.values.erase("brightness_loss");
    e.values.erase("brightness_mae");
    e.values.erase("val_brightness_mae");
    e.values["parity_loss"] = 0.3;
    e.values["parity_accuracy"] = 0.9;
  }
  const std::string dir = out_dir();
  const std::string png = dir + "/curves_overlay.png", svg = dir + "/curves_overlay.svg";
  plot_curves({two_head_run("run a", 12, false), other}, "two runs", png, svg);
  const Surface image = decode(png);
  EXPECT_GT(count_near(image.get(), kBlue), 500);
  EXPECT_GT(count_near(image.get(), kOrange), 500);
  const std::string text = read_all(svg);
  for (const char* title :
       {"run a", "run b &lt;uncertainty&gt;", "digit — loss", "brightness — mae", "parity — loss"})
    EXPECT_NE(text.find(title), std::string::npos) << title;
}

TEST(CurvesPlot, SingleEpochAndNaNsStillDraw) {
  RunHistory run = two_head_run("one epoch", 1, false);
  run.epochs[0].values["digit_accuracy"] = kNaN;
  run.epochs[0].values["val_digit_accuracy"] = kNaN;
  RunHistory gaps = two_head_run("gaps", 6, false);
  gaps.epochs[2].values["digit_loss"] = kNaN;
  const std::string dir = out_dir();
  plot_curves({run}, "one epoch", dir + "/one_epoch.png", dir + "/one_epoch.svg");
  EXPECT_GT(count_near(decode(dir + "/one_epoch.png").get(), kBlue), 50) << "markers missing";
  EXPECT_NE(read_all(dir + "/one_epoch.svg").find("no values"), std::string::npos);
  plot_curves({gaps}, "gaps", dir + "/gaps.png", dir + "/gaps.svg");
  EXPECT_EQ(read_all(dir + "/gaps.svg").find("nan"), std::string::npos);
}

TEST(CurvesPlot, MissingDirectoryIsNamedAndNothingIsWritten) {
  const std::string png = "/nonexistent-polytask-dir/curves.png";
  const std::string dir = out_dir();
  try {
    plot_curves({two_head_run("r", 3, false)}, "t", png, dir + "/never.svg");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(png), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/never.svg"));
  EXPECT_THROW(plot_curves({}, "t", dir + "/a.png", dir + "/a.svg"), Error);
}

}  // namespace
}  // namespace polytask::watch
